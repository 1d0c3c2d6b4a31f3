"""Output files: fetched only from https hosts whose every address is public (or from Atlas's own origin),
size-capped, redirects followed by hand (each hop checked again), the connected socket's address checked too, the
whole fetch within the client's deadline; a file can be judged by its head before the rest is read.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from atlas_mcp.addresses import is_public_address, origin_of
from atlas_mcp.atlas.transport import Transport
from atlas_mcp.errors import BadResponseError, NotFoundError, UpstreamUnavailableError

if TYPE_CHECKING:
    import httpx

__all__ = ["HEAD_BYTES", "Downloads"]

HEAD_BYTES = 4096  # what download_head_first reads of a file before asking whether the rest is wanted


class Downloads(Transport):
    """Fetching output files and checking URLs before anything is fetched."""

    async def download(self, url: str, *, max_bytes: int) -> tuple[bytes, str | None]:
        """Fetch an output file (for a preview or a saved copy): https or Atlas's origin only, size-capped.

        Redirects are followed by hand, at most three, and only to places the first URL could have been:
        https hosts whose every address is public, checked before connecting and again on the connected
        socket. The whole fetch, redirects included, is bounded by the client's deadline. Returns the bytes
        and the announced content type.
        """
        data = bytearray()
        announced = await self.download_into(url, data.extend, max_bytes=max_bytes)
        return bytes(data), announced

    async def download_head_first(
        self, url: str, *, max_bytes: int, wanted: Callable[[str | None, bytes], bool]
    ) -> tuple[bytes, str | None, bool]:
        """:meth:`download`, but asks ``wanted`` (with the announced content type and the first
        :data:`HEAD_BYTES`) whether the rest is worth reading. Returns the bytes read, the content type and whether
        the file is complete: a file nobody wants stops after its head (a 40 MB 3D model is not read to make a
        preview it cannot be)."""
        data = bytearray()
        announced, complete = await self._bounded_download(url, max_bytes, data.extend, wanted)
        return bytes(data), announced, complete

    async def download_into(self, url: str, write: Callable[[bytes], object], *, max_bytes: int) -> str | None:
        """:meth:`download`, handing each piece to ``write`` as it arrives (a file: nothing is held whole in
        memory). Returns the announced content type."""
        announced, _complete = await self._bounded_download(url, max_bytes, write, None)
        return announced

    async def _bounded_download(
        self,
        url: str,
        max_bytes: int,
        write: Callable[[bytes], object],
        wanted: Callable[[str | None, bytes], bool] | None,
    ) -> tuple[str | None, bool]:
        import httpx

        try:
            with anyio.fail_after(self.deadline):
                return await self._download(url, max_bytes, write, wanted)
        except TimeoutError:
            raise UpstreamUnavailableError(
                f"The output file took longer than {self.deadline:g} s to fetch; its URL still works for a later try."
            ) from None
        except (ValueError, httpx.InvalidURL) as exc:  # Atlas's URL (or a redirect's) that is no URL at all
            raise BadResponseError(f"The output URL is malformed ({type(exc).__name__}); not fetched.") from exc

    async def _download(
        self,
        url: str,
        max_bytes: int,
        write: Callable[[bytes], object],
        wanted: Callable[[str | None, bytes], bool] | None = None,
    ) -> tuple[str | None, bool]:
        """The fetch itself: the announced content type, and whether the whole file was read (``wanted`` may stop
        it after its head)."""
        import httpx

        for _hop in range(4):
            own_origin = await self._check_download_url(url)
            request = self.http.build_request("GET", url, headers={"Accept": "*/*"})
            try:
                response = await self.http.send(request, stream=True, auth=None)  # output files are public
            except httpx.TransportError as exc:
                raise UpstreamUnavailableError(
                    f"The output file could not be fetched ({type(exc).__name__}); its URL still works for a later try."
                ) from exc
            try:
                # Through a proxy the socket's peer is the proxy, which connects by its own lookup: then only the
                # check of the URL's host, resolved here before sending, applies.
                peer = None if _via_proxy(url) else _peer_address(response)
                if not own_origin and peer is not None and not is_public_address(peer):
                    raise BadResponseError("The output URL points at a private or local address; not fetched.")
                if response.is_redirect and "location" in response.headers:
                    url = str(response.url.join(response.headers["location"]))
                    continue
                if response.status_code != 200:
                    raise NotFoundError(
                        f"The output file answered HTTP {response.status_code}; it may have expired.",
                        status=response.status_code,
                    )
                announced = response.headers.get("content-length")
                if announced is not None and announced.isdigit() and int(announced) > max_bytes:
                    raise BadResponseError(f"The output file is larger than {max_bytes // 1048576} MiB; not fetched.")
                content_type: str | None = response.headers.get("content-type")
                received = 0
                head = bytearray() if wanted is not None else None
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise BadResponseError(
                            f"The output file is larger than {max_bytes // 1048576} MiB; stopped reading."
                        )
                    write(chunk)
                    if head is not None and wanted is not None:
                        head += chunk
                        if len(head) >= HEAD_BYTES:
                            if not wanted(content_type, bytes(head)):
                                return content_type, False
                            head = None
                if head is not None and wanted is not None and not wanted(content_type, bytes(head)):
                    return content_type, False
                return content_type, True
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        raise BadResponseError("The output URL redirected too many times; not fetched.")

    async def _check_download_url(self, url: str) -> bool:
        """Refuse a URL we must not fetch; return whether it is on Atlas's own origin (trusted as configured)."""
        if origin_of(url) == self.origin:
            return True
        await self.check_public_https(url, "output URL")
        return False

    async def check_public_https(self, url: str, what: str) -> None:
        """An https URL whose host resolves only to public addresses, or :class:`BadResponseError`.

        Resolving here catches every spelling of a private address (``127.1``, ``2130706433``,
        ``localhost.``, a name in /etc/hosts), not only the literal ones.
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme != "https" or not host:
            raise BadResponseError(f"Only https {what}s (or Atlas's own origin) are fetched; this one is not.")
        refused = BadResponseError(f"The {what} points at a private or local address; not fetched.")
        if host == "localhost" or host.endswith(".localhost"):
            raise refused
        port = parts.port or 443  # a malformed port raises ValueError: the URL is no URL
        try:
            addresses = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UpstreamUnavailableError(
                f"The host of the {what} could not be resolved ({type(exc).__name__}); try again later."
            ) from exc
        if not addresses or not all(is_public_address(str(address[4][0])) for address in addresses):
            raise refused


def _via_proxy(url: str) -> bool:
    """Whether the environment sends requests for ``url`` through a proxy, as httpx (trusting it) decides:
    a proxy for the scheme (or ALL_PROXY), and the host not in NO_PROXY (``*``, the host, or a parent domain)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    host = (parts.hostname or "").lower()
    for entry in proxies.get("no", "").lower().split(","):
        entry = entry.strip().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return False
    return True


def _peer_address(response: httpx.Response) -> str | None:
    """The address the response really came from, when the transport says (a socket does; an ASGI app not).

    The host was resolved and checked before connecting; this closes the gap of a name that resolves
    differently the second time (DNS rebinding).
    """
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    peer = get_extra_info("server_addr") if callable(get_extra_info) else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None
