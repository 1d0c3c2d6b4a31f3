"""upload_media: a file becomes an Atlas URL that models take as input. Free.

A local path is read only inside the allowed folders (ATLASCLOUD_UPLOAD_ROOTS, or the client's workspace roots,
asked for here), and never over HTTP; the bytes themselves (``data``) and public https URLs (``url``, re-hosted)
work everywhere. :mod:`atlas_mcp.server.sources` is imported by the calls that need it, not at start-up.

No ``from __future__ import annotations``: the SDK reads the tools' signatures at registration.
"""

import io
import logging
from typing import Annotated

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, ListRoots, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import CallToolResult, ListRootsRequest, ListRootsResult, ToolAnnotations
from pydantic import BaseModel, Field

from atlas_mcp.config import Settings
from atlas_mcp.core.outcome import UploadResult
from atlas_mcp.errors import InputError
from atlas_mcp.media.files import open_upload, root_paths
from atlas_mcp.server import icons
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.results import upload_result
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import (
    as_tool_errors,
    state_of,
)

__all__ = ["ROOTS_WAIT_SECONDS", "register_upload_media"]

logger = logging.getLogger(__name__)

ROOTS_WAIT_SECONDS = 5.0  # a client that declares roots but never lists them must not hold upload_media


class _AnyRoot(BaseModel):
    uri: str


class _AnyRoots(BaseModel):
    """roots/list read leniently: a root this server cannot use is left out later, with a line on stderr, instead
    of failing the whole answer (the SDK's own type refuses any root that is not a file: URI)."""

    roots: list[_AnyRoot]


async def _client_roots(ctx: Context) -> ListRoots | _AnyRoots | ListRootsResult | None:
    """The client's workspace roots, unless the user configured upload roots (theirs win).

    In the 2025 era this is a request in the middle of the call, and a client that declared roots may never
    answer it: the wait is bounded. In the 2026 era the question rides the call's InputRequiredResult and the
    client answers it when it calls again, so nothing here waits.
    """
    if state_of(ctx).settings.upload_roots:
        return None
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    if not ctx.session.can_send_request:
        return ListRoots()
    try:
        with anyio.fail_after(ROOTS_WAIT_SECONDS):
            listed: _AnyRoots = await ctx.session.send_request(
                ListRootsRequest(), _AnyRoots, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
            )
            return listed
    except TimeoutError:
        raise ToolError(
            f"Your MCP client says it has workspace roots but did not list them within {ROOTS_WAIT_SECONDS:g} s, so "
            "no folder may be read. Set ATLASCLOUD_UPLOAD_ROOTS in the server's environment to the folders uploads "
            "may come from."
        ) from None


def register_upload_media(shelf: ToolShelf, settings: Settings) -> None:
    """Register upload_media: a local file, the bytes themselves, or a public URL, as an Atlas URL for model inputs."""

    @shelf.tool(
        title="Upload media",
        icons=icons.SERVER,
        description=(
            "Upload an image, video or audio file to Atlas Cloud and get a URL that models take as input "
            "(e.g. generate_image's `image`). Free. Give one of: path (a local file inside the allowed folders, "
            "ATLASCLOUD_UPLOAD_ROOTS or the client's workspace roots; not over HTTP), data (the file as base64 or "
            "a data: URI, with filename), or url (a public https file to re-host). Hidden files, folders and "
            "non-media files are refused."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def upload_media(
        ctx: Context,
        path: Annotated[str | None, Field(min_length=1, max_length=4096, description="Path of a local file.")] = None,
        data: Annotated[
            str | None,
            Field(min_length=1, description="The file itself: base64, or a data: URI (data:image/png;base64,...)."),
        ] = None,
        filename: Annotated[
            str | None, Field(max_length=255, description="A name for data (the extension follows the content).")
        ] = None,
        url: Annotated[
            str | None,
            Field(max_length=4096, description="A public https file to re-host at Atlas."),
        ] = None,
        *,
        # Resolved, so no default: on Python 3.10 a None default turns the annotation into Optional[Annotated[...]],
        # which the SDK refuses (it looks for Resolve only at the top level).
        client_roots: Annotated[ListRootsResult | _AnyRoots | None, Resolve(_client_roots)],
    ) -> Annotated[CallToolResult, UploadResult]:
        return await upload(state_of(ctx), path, data, filename, url, client_roots)


async def upload(
    state: AppState,
    path: str | None,
    data: str | None,
    filename: str | None,
    url: str | None,
    client_roots: ListRootsResult | _AnyRoots | None,
) -> CallToolResult:
    """upload_media's body: exactly one of a path (inside the roots), the bytes, or a public URL to re-host."""
    given = [name for name, value in (("path", path), ("data", data), ("url", url)) if value is not None]
    if len(given) != 1:
        raise ToolError("Give exactly one of path, data or url" + (f" (got {', '.join(given)})." if given else "."))
    if url is not None:
        from atlas_mcp.server.sources import rehost

        with as_tool_errors():
            return await rehost(state, url, filename)
    if data is not None:
        from atlas_mcp.server.sources import decode_data, judged

        with as_tool_errors():
            cap = state.settings.max_upload_bytes
            received = await judged(decode_data(data, max_bytes=cap), filename, "upload")
            if len(received.data) > cap:
                raise InputError(f"Not uploaded: the file is over the upload cap of {cap // (1024 * 1024)} MiB.")
            uploaded = await state.atlas.upload(
                io.BytesIO(received.data),
                filename=received.filename,
                content_type=received.media.mime,
                size=len(received.data),
            )
            logger.info("uploaded %s (%d bytes, sent %s)", received.filename, len(received.data), given[0])
            return upload_result(
                uploaded, filename=received.filename, content_type=received.media.mime, size=len(received.data)
            )
    assert path is not None
    if state.remote:
        raise ToolError(
            "This server runs remotely (over HTTP), so it cannot read files on your machine and no path was read. "
            "Send the file itself as data (base64 or a data: URI, with filename), or a public https url."
        )
    roots = list(state.settings.upload_roots) or root_paths(
        [str(root.uri) for root in (client_roots.roots if client_roots is not None else [])]
    )
    with as_tool_errors():
        opened = await anyio.to_thread.run_sync(
            lambda: open_upload(path, roots, max_bytes=state.settings.max_upload_bytes)
        )
        try:
            uploaded = await state.atlas.upload(
                opened.file, filename=opened.path.name, content_type=opened.content_type, size=opened.size
            )
        finally:
            opened.close()
        logger.info("uploaded %s (%d bytes)", opened.path.name, opened.size)
        return upload_result(uploaded, filename=opened.path.name, content_type=opened.content_type, size=opened.size)
