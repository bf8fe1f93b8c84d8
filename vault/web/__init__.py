"""The escalation desk: server-rendered pages next to the JSON API, with their static assets."""
