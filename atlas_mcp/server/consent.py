"""The consent page of OAuth mode: where a user, sent here by ``/authorize``, pastes their Atlas API key once.

The page is the server's own, small and self-contained: no script, no CDN, a strict Content-Security-Policy (nothing
loads; the form may post only here, and be redirected only to the client that asked), never framed. The form is
protected against cross-site posting twice over: a token in a ``SameSite=Strict`` cookie that must equal the one in
the form, and both must equal the one stored with the authorization request. The key is checked against Atlas
before it is accepted, then kept only encrypted (:class:`~atlas_mcp.server.oauth.AtlasOAuth`). The answer is the
redirect back to the client with the code, its ``state``, and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import functools
import hmac
import html
import secrets
from urllib.parse import urlsplit

from mcp.server.auth.provider import AuthorizeError, construct_redirect_uri
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from atlas_mcp.server.oauth import CONSENT_PATH, AtlasOAuth, Pending

__all__ = ["consent_routes"]

_COOKIE = "atlas_consent"
_MAX_FORM_BYTES = 8 * 1024


def consent_routes(provider: AtlasOAuth) -> list[Route]:
    secure = provider.issuer.startswith("https://")
    cookie_path = urlsplit(provider.issuer).path.rstrip("/") + CONSENT_PATH  # the path the browser sees (a proxy's)
    page = functools.partial(_page, secure=secure, cookie_path=cookie_path)

    async def show(request: Request) -> Response:
        pending = await provider.pending(request.query_params.get("request", ""))
        if pending is None:
            return page(None, "This sign-in link has expired or was already used. Start again from your app.", 400)
        return page(pending, None, 200)

    async def submit(request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > _MAX_FORM_BYTES:
            return page(None, "That form was too large.", 413)
        form = await request.form()
        pending = await provider.pending(str(form.get("request", "")))
        if pending is None:
            return page(None, "This sign-in link has expired or was already used. Start again from your app.", 400)
        offered, cookie = str(form.get("csrf", "")), request.cookies.get(_COOKIE, "")
        expected = pending.csrf.encode()
        if not (hmac.compare_digest(offered.encode(), expected) and hmac.compare_digest(cookie.encode(), expected)):
            return page(None, "This form did not come from this page. Start again from your app.", 403)
        key = str(form.get("api_key", "")).strip()
        if not 8 <= len(key) <= 512 or not key.isprintable() or any(ch.isspace() for ch in key):
            return page(pending, "That does not look like an Atlas Cloud API key.", 400)
        if not await provider.check_key(key):
            return page(pending, "Atlas Cloud did not accept that key. Check it and try again.", 400)
        try:
            code = await provider.grant(pending, key)
        except AuthorizeError as exc:
            return page(None, exc.error_description or "This sign-in cannot be completed.", 400)
        target = construct_redirect_uri(pending.redirect_uri, code=code, state=pending.state, iss=provider.issuer)
        answer = RedirectResponse(target, status_code=302)
        answer.delete_cookie(_COOKIE, path=cookie_path)
        return answer

    return [Route(CONSENT_PATH, show, methods=["GET"]), Route(CONSENT_PATH, submit, methods=["POST"])]


def _page(pending: Pending | None, problem: str | None, status: int, *, secure: bool, cookie_path: str) -> Response:
    nonce = secrets.token_urlsafe(16)
    redirect_origin = ""
    if pending is not None:
        parts = urlsplit(pending.redirect_uri)
        redirect_origin = f" {parts.scheme}://{parts.netloc}"
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'{redirect_origin}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    body = _form(pending) if pending is not None else ""
    shown = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connect Atlas Cloud</title>
<style nonce="{nonce}">
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; color: #1f2937; }}
input[type=password] {{ width: 100%; padding: .5rem; font: inherit; box-sizing: border-box; }}
button {{ margin-top: 1rem; padding: .5rem 1.25rem; font: inherit; }}
.problem {{ color: #b91c1c; }} .small {{ color: #4b5563; font-size: .875rem; }}
</style></head>
<body><h1>Connect Atlas Cloud</h1>{shown}{body}</body></html>"""
    headers = {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",  # no-referrer would make the form post "Origin: null" (refused)
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    response = HTMLResponse(page, status_code=status, headers=headers)
    if pending is not None:
        response.set_cookie(
            _COOKIE, pending.csrf, max_age=600, path=cookie_path, httponly=True, samesite="strict", secure=secure
        )
    return response


def _form(pending: Pending) -> str:
    client = html.escape(pending.client_name or urlsplit(pending.client_id).netloc or pending.client_id)
    back = html.escape(urlsplit(pending.redirect_uri).netloc)
    return f"""
<p><strong>{client}</strong> asks to generate images, video and audio with your Atlas Cloud account through this
server. What it makes is billed to the key you enter here. You will be sent back to <code>{back}</code>.</p>
<form method="post" action="consent">
<input type="hidden" name="request" value="{html.escape(pending.pending_id)}">
<input type="hidden" name="csrf" value="{html.escape(pending.csrf)}">
<label for="api_key">Your Atlas Cloud API key</label>
<input type="password" id="api_key" name="api_key" autocomplete="off" required>
<button type="submit">Connect</button>
</form>
<p class="small">The key is checked with Atlas Cloud, then stored encrypted on this server; the app gets a token
of this server's, never the key. To disconnect, remove the connector in your app, or create a
new key at Atlas Cloud.</p>"""
