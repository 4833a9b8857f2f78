"""A browser's session for the benchmarks that drive the project's JSON API."""

from __future__ import annotations

import http.client
import json


def session_cookies(url: str, value: object) -> dict[str, str]:
    """Make a session holding k0 = value, as a browser would; return its cookies by name."""
    # By hand rather than with http.cookiejar, which keeps Secure cookies from plain HTTP.
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    cookies: dict[str, str] = {}

    def call(method: str, path: str, body: bytes | None = None) -> None:
        headers = {"Cookie": cookie_header(cookies)}
        if body is not None:
            headers |= api_headers(url, cookies["csrftoken"])
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{method} {path} answered {response.status}")
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            cookies[name] = rest.partition(";")[0]

    call("GET", "/")
    call("PUT", "/api/session/keys/k0", json.dumps(value).encode())
    connection.close()
    return cookies


def session_cookie(url: str, value: object) -> str:
    """The Cookie header of a new session holding k0 = value."""
    return cookie_header(session_cookies(url, value))


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def api_headers(url: str, csrftoken: str) -> dict[str, str]:
    """What the API wants beside the cookies on a write: the CSRF token, origin, JSON."""
    return {
        "X-CSRFToken": csrftoken,
        "Origin": url,
        "Referer": url + "/",
        "Content-Type": "application/json",
    }


# wrk: PUT a random JSON number to `path`, each request as one of the sessions.
WRK_PUT = """
sessions = {%(sessions)s}
request = function()
  local s = sessions[math.random(#sessions)]
  return wrk.format("PUT", "%(path)s", {
    ["Cookie"] = s[1], ["X-CSRFToken"] = s[2], ["Origin"] = "%(origin)s",
    ["Referer"] = "%(origin)s/", ["Content-Type"] = "application/json"},
    tostring(math.random(1000000000)))
end
"""


def wrk_put_script(url: str, path: str, sessions: list[dict[str, str]]) -> str:
    """A wrk Lua script: PUT a JSON number to `path` of the API, spread over the sessions."""
    pairs = ",".join(_lua_pair(cookie_header(c), c["csrftoken"]) for c in sessions)
    return WRK_PUT % {"sessions": pairs, "path": path, "origin": url}


def _lua_pair(cookie: str, token: str) -> str:
    return f'{{"{cookie}", "{token}"}}'
