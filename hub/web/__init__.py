"""The web side: the aiohttp app, its routes, and the live view engine."""
