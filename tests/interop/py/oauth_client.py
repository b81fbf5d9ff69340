"""The official Python MCP SDK client (`mcp` from PyPI) logs in to the relay's own
authorization server: `mcp.client.auth.OAuthClientProvider` over the streamable HTTP client
transport does discovery, dynamic registration, the token exchange and the refresh; its
redirect handler plays the browser, filling the relay's login and consent forms with an HTTP
client that keeps cookies. Then `tools/call`, a wait past the access token's lifetime (the
relay is configured with a short one), and another `tools/call`, which the SDK precedes with a
refresh.

Usage: oauth_client.py RESOURCE_URL, with OAUTH_USER and OAUTH_PASSWORD in the environment.
Prints one JSON line (what happened) on stdout for oauth_server_interop.test.mjs to check;
exits non-zero on any failure. Not here: any judgement of the relay (the Node test asserts).
"""

import asyncio
import base64
import json
import os
import re
import sys
from html import unescape
from urllib.parse import parse_qs, urljoin, urlparse

try:  # the SDK's HTTP client: httpx2 in mcp 2.x, httpx before
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

RESOURCE = sys.argv[1]
ISSUER = "{0.scheme}://{0.netloc}".format(urlparse(RESOURCE))
REDIRECT = "http://127.0.0.1:53682/callback"  # never listened on: the code is read from Location


class MemoryStorage(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


def field(html, name):
    """The value of the input `name` in the page."""
    m = re.search(r'<input[^>]*name="%s"[^>]*>' % re.escape(name), html)
    v = m and re.search(r'value="([^"]*)"', m.group(0))
    return unescape(v.group(1)) if v else None


class FormDriver:
    """The browser: follows the relay's redirects, logs in and approves; cookies kept."""

    def __init__(self):
        self.pages = []
        self.answer = None
        self.state_sent = None

    async def redirect_handler(self, authorization_url):
        self.state_sent = parse_qs(urlparse(authorization_url).query).get("state", [None])[0]
        with httpx.Client(follow_redirects=False, timeout=20) as web:
            res = web.get(authorization_url)
            for _ in range(8):
                if res.status_code in (302, 303):
                    to = urljoin(str(res.url), res.headers["location"])
                    if to.startswith(REDIRECT):
                        self.answer = parse_qs(urlparse(to).query)
                        return
                    if not to.startswith(ISSUER + "/"):
                        raise RuntimeError("redirect to a stranger: " + to)
                    res = web.get(to)
                    continue
                if res.status_code != 200:
                    raise RuntimeError("%s at %s: %s" % (res.status_code, res.url, res.text[:400]))
                html = res.text
                form = {"request": field(html, "request"), "csrf": field(html, "csrf")}
                action = re.search(r'<form[^>]*action="([^"]*)"', html)
                action = action and action.group(1)
                if action == "/oauth/login":
                    self.pages.append("login")
                    form.update(username=os.environ["OAUTH_USER"], password=os.environ["OAUTH_PASSWORD"])
                elif action == "/oauth/consent":
                    self.pages.append("consent")
                    form.update(decision="approve", remember="yes")
                else:
                    raise RuntimeError("no login or consent form at %s: %s" % (res.url, html[:400]))
                res = web.post(ISSUER + action, data=form, headers={"origin": ISSUER})
        raise RuntimeError("too many pages: %s" % self.pages)

    async def callback_handler(self):
        if not self.answer or "code" not in self.answer:
            raise RuntimeError("no code came back: %s" % self.answer)
        one = lambda k: self.answer.get(k, [None])[0]  # noqa: E731
        return AuthorizationCodeResult(code=one("code"), state=one("state"), iss=one("iss"))


def claims(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def main():
    driver = FormDriver()
    storage = MemoryStorage()
    grants = []

    async def record(request):
        if request.method == "POST" and request.url.path == "/oauth/token":
            grants.append(parse_qs(request.content.decode()).get("grant_type", [None])[0])

    provider = OAuthClientProvider(
        server_url=RESOURCE,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-relay Python SDK interop",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=driver.redirect_handler,
        callback_handler=driver.callback_handler,
    )
    report = {}
    async with httpx.AsyncClient(auth=provider, timeout=30, event_hooks={"request": [record]}) as http:
        async with streamable_http_client(RESOURCE, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                report["server"] = init.server_info.name if hasattr(init, "server_info") else init.serverInfo.name
                report["echo"] = text_of(await session.call_tool("echo", {"text": "from the Python SDK"}))
                first = storage.tokens
                expires_in = int(first.expires_in or 0)
                if not 0 < expires_in <= 5:
                    raise RuntimeError("the relay should issue short-lived tokens here, got expires_in=%s" % expires_in)
                await asyncio.sleep(expires_in + 1)  # past the lifetime: the SDK refreshes before sending
                report["after_refresh"] = text_of(await session.call_tool("echo", {"text": "after refresh"}))
                second = storage.tokens
    report.update(
        pages=driver.pages,
        state_ok=driver.state_sent is not None and driver.answer.get("state", [None])[0] == driver.state_sent,
        iss=driver.answer.get("iss", [None])[0],
        grants=grants,
        rotated=bool(second.refresh_token) and second.refresh_token != first.refresh_token,
        new_access=second.access_token != first.access_token,
        aud=claims(second.access_token).get("aud"),
    )
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
