"""The HTTP API: the FastAPI app and its routes, tokens and scopes, the request guard, metrics, the server."""
