"""What the DNS panel shows: queries and answers seen on the wire, aggregated.

Also the tunnelling score of a name: DNS tunnels (iodine, dnscat2, exfiltration) put data into
long, random-looking labels. `tunnel_score(name)` is 0..1; the anomaly detector may read it
through `DnsStats.suspicious` or call the function itself.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from functools import lru_cache

from packettracer.model.dnsparse import DnsMessage
from packettracer.model.names import registered_domain

SUSPICIOUS_SCORE = 0.5
"""Names scoring at least this get the warning marker."""
MAX_TRACKED_NAMES = 20_000
MAX_PENDING = 10_000
QUERY_TIMEOUT = 10.0
"""A query without an answer after this long counts as unanswered."""


def _entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


@lru_cache(maxsize=20000)
def tunnel_score(name: str) -> float:
    """0..1: how much `name` looks like data smuggled in DNS (very long names, very long labels,
    high-entropy subdomains). Reverse-lookup names (in-addr.arpa, ip6.arpa) are long by design
    and score 0."""
    name = name.rstrip(".").lower()
    if not name or name.endswith(".arpa"):
        return 0.0
    labels = name.split(".")
    longest = max(len(label) for label in labels)
    domain = registered_domain(name) or ""
    sub = name[: -len(domain)].rstrip(".") if domain and name.endswith(domain) else name
    sub_chars = sub.replace(".", "")
    length_part = min(1.0, max(0.0, (len(name) - 60) / 100))
    label_part = min(1.0, max(0.0, (longest - 24) / 30))
    entropy_part = 0.0
    if len(sub_chars) >= 16:
        entropy_part = min(1.0, max(0.0, (_entropy(sub_chars) - 3.7) / 0.6))
        # a long random-looking subdomain weighs more than a short one
        entropy_part *= min(1.0, len(sub_chars) / 32)
    return round(max(length_part, label_part, entropy_part), 3)


@dataclass(slots=True)
class ResolverStats:
    address: str
    queries: int = 0
    responses: int = 0
    nxdomain: int = 0
    servfail: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    latency_max: float = 0.0

    @property
    def latency_avg(self) -> float | None:
        return self.latency_sum / self.latency_n if self.latency_n else None


@dataclass(slots=True)
class DnsEvent:
    ts: float
    client: str
    server: str
    qname: str
    qtype: str
    rcode: str | None = None
    latency: float | None = None
    answers: list[str] = field(default_factory=list)
    score: float = 0.0


class DnsStats:
    """Counters for the DNS panel; fed by the resolution analyzer, read by the UI timer."""

    def __init__(self, recent: int = 200) -> None:
        self.queries = 0
        self.responses = 0
        self.malformed = 0
        self.unanswered = 0
        self.by_name: Counter[str] = Counter()
        self.by_domain: Counter[str] = Counter()
        self.qtypes: Counter[str] = Counter()
        self.rcodes: Counter[str] = Counter()
        self.resolvers: dict[str, ResolverStats] = {}
        self.recent: deque[DnsEvent] = deque(maxlen=recent)
        self.suspicious: OrderedDict[str, float] = OrderedDict()
        """name -> tunnel score, for names at or above SUSPICIOUS_SCORE (bounded)."""
        self._pending: OrderedDict[tuple[str, str, int, str], DnsEvent] = OrderedDict()

    def _resolver(self, address: str) -> ResolverStats:
        res = self.resolvers.get(address)
        if res is None:
            res = self.resolvers[address] = ResolverStats(address)
        return res

    def _count_name(self, qname: str) -> None:
        if qname in self.by_name or len(self.by_name) < MAX_TRACKED_NAMES:
            self.by_name[qname] += 1
        domain = registered_domain(qname) or qname
        if domain in self.by_domain or len(self.by_domain) < MAX_TRACKED_NAMES:
            self.by_domain[domain] += 1

    def on_message(self, msg: DnsMessage, src: str, dst: str, ts: float) -> DnsEvent | None:
        """One message from `src` to `dst`. Returns the event it completed or started."""
        # mDNS announcements carry answers without a question: name them by their first answer
        qname = msg.qname or (msg.answers[0].name if msg.answers else "")
        qtype = msg.qtype or (msg.answers[0].rtype if msg.answers else "?")
        if not msg.response:
            self.queries += 1
            self.qtypes[qtype] += 1
            self._count_name(qname)
            self._resolver(dst).queries += 1
            event = DnsEvent(ts, src, dst, qname, qtype, score=tunnel_score(qname))
            if event.score >= SUSPICIOUS_SCORE:
                self.suspicious[qname] = event.score
                self.suspicious.move_to_end(qname)
                if len(self.suspicious) > 1000:
                    self.suspicious.popitem(last=False)
            self._pending[(src, dst, msg.id, qname)] = event
            if len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
                self.unanswered += 1
            self.recent.append(event)
            return event
        self.responses += 1
        self.rcodes[msg.rcode] += 1
        res = self._resolver(src)
        res.responses += 1
        if msg.rcode == "NXDOMAIN":
            res.nxdomain += 1
        elif msg.rcode == "SERVFAIL":
            res.servfail += 1
        answers = [a.data for a in msg.answers if a.rtype in ("A", "AAAA", "CNAME")][:4]
        pending = self._pending.pop((dst, src, msg.id, qname), None)
        if pending is None:
            # the query was not seen (capture started later, or one-way mirror): record the answer
            event = DnsEvent(ts, dst, src, qname, qtype, msg.rcode, None, answers)
            event.score = tunnel_score(qname)
            self.recent.append(event)
            return event
        latency = max(0.0, ts - pending.ts)
        pending.rcode = msg.rcode
        pending.latency = latency
        pending.answers = answers
        res.latency_sum += latency
        res.latency_n += 1
        res.latency_max = max(res.latency_max, latency)
        return pending

    def expire(self, now: float) -> None:
        """Count queries that got no answer within QUERY_TIMEOUT."""
        cutoff = now - QUERY_TIMEOUT
        pending = self._pending
        while pending:
            key, event = next(iter(pending.items()))
            if event.ts >= cutoff:
                break
            del pending[key]
            event.rcode = event.rcode or "no answer"
            self.unanswered += 1

    def rate(self, rcode: str) -> float:
        return self.rcodes.get(rcode, 0) / self.responses if self.responses else 0.0

    def summary(self, top: int = 10) -> dict[str, object]:
        return {
            "queries": self.queries,
            "responses": self.responses,
            "unanswered": self.unanswered,
            "malformed": self.malformed,
            "nxdomain_rate": round(self.rate("NXDOMAIN"), 4),
            "servfail_rate": round(self.rate("SERVFAIL"), 4),
            "top_names": [{"name": n, "queries": c} for n, c in self.by_name.most_common(top)],
            "top_domains": [
                {"domain": n, "queries": c} for n, c in self.by_domain.most_common(top)
            ],
            "qtypes": dict(self.qtypes.most_common()),
            "rcodes": dict(self.rcodes.most_common()),
            "resolvers": [
                {
                    "address": r.address,
                    "queries": r.queries,
                    "responses": r.responses,
                    "latency_avg_ms": None
                    if r.latency_avg is None
                    else round(r.latency_avg * 1000, 3),
                }
                for r in sorted(self.resolvers.values(), key=lambda r: -r.queries)[:top]
            ],
            "suspicious": [
                {"name": n, "score": s} for n, s in list(self.suspicious.items())[-top:]
            ],
        }
