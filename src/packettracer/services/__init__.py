"""Async services around the model; shared by the dashboard, `report` and `agent`. No Textual."""
