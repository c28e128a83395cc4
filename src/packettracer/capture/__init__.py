"""Packet sources (live AF_PACKET, scapy, pcap files) and the fast decoder."""
