"""The vault's use cases. The CLI and (later) the HTTP server call these; they call the parts."""
