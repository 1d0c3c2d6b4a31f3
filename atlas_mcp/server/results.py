"""What a generation hands back: text for the model, inline previews for the user, files on disk, and the same
facts as structured content.

Clients reject results over about 1 MiB and the Anthropic API refuses images over 8000 px a side, so
an inline image is always a JPEG preview within a byte budget; the full-size file goes to a URL and,
when ``ATLASCLOUD_OUTPUT_DIR`` is set, to disk. Pillow is imported here, lazily, where the work is.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent
from pydantic import ValidationError

from atlas_mcp.atlas import NOT_VISIBLE_YET, AtlasClient, Output, Prediction, Transcript, UploadedFile
from atlas_mcp.config import Settings
from atlas_mcp.core.outcome import (
    MAX_SEGMENTS,
    MAX_TRANSCRIPT_CHARS,
    GenerationResult,
    Outcome,
    OutputInfo,
    PriceQuote,
    SegmentInfo,
    TranscriptInfo,
    UploadResult,
)
from atlas_mcp.core.outputs import Family, identify_output, identify_solid, plan_for, solid_label, usual_duration
from atlas_mcp.core.shown import Shown
from atlas_mcp.errors import AtlasMCPError
from atlas_mcp.media.files import output_path, read_saved_output
from atlas_mcp.media.previews import DecodeBudget, Preview, make_preview, probe_image
from atlas_mcp.server.finished import FinishedOutputs
from atlas_mcp.spend.policy import SpendReport

__all__ = ["generation_outcome", "render", "upload_result"]

logger = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
_INLINE_NOTE = "sent inline by Atlas, so there is no URL: set ATLASCLOUD_OUTPUT_DIR to keep such files"
MAX_FETCHED_OUTPUTS = 16  # per prediction: more would multiply downloads, disk and memory by whatever Atlas says
SEGMENTS_IN_TEXT = 40  # listed with their times in the text; more are in the structured result and the .json


async def generation_outcome(
    prediction: Prediction,
    *,
    atlas: AtlasClient,
    settings: Settings,
    waited_seconds: float,
    not_used: Sequence[str] = (),
    previews: bool = True,
    budget: DecodeBudget | None = None,
    quote: PriceQuote | None = None,
    reused_after: float | None = None,
    spend: SpendReport | None = None,
    family: Family = "image",
    known: FinishedOutputs | None = None,
) -> Outcome:
    """Turn a prediction into its outcome: the text, previews within budget, saved files, the structured result.
    ``known`` keeps what a finished prediction's outputs were found to be, so the next look costs no download.

    ``previews`` False keeps media out of the result (video and audio link their files instead). ``budget``
    is the memory decodes in flight share, across calls: each holds a full-size bitmap, so a burst of
    concurrent calls would otherwise hold dozens. ``family`` is what the model makes (see
    :mod:`atlas_mcp.core.outputs`): a text family's outputs are its text, never links to fetch.
    """
    outputs: list[OutputInfo] = []
    images: list[Preview | None] = []
    heard = prediction.transcript if prediction.phase == "succeeded" else None
    if family == "text" and prediction.phase == "succeeded":
        outputs = [_text_info(output) for output in prediction.outputs]
        said = "\n".join(output.url or output.text or "" for output in prediction.outputs if not output.inline)
        if heard is None and said.strip():
            heard = Transcript(text=said.strip())
    elif prediction.phase == "succeeded" and prediction.outputs:
        # Atlas signs output links afresh on every read (a new expiry, a new signature): the files are the same,
        # so they are known by their paths, and the result carries the links of this read.
        key = (prediction.id, previews, family, tuple((o.url or "").split("?")[0] for o in prediction.outputs))
        found = known.get(key) if known is not None else None
        if found is None:
            found = await _fetched_outputs(prediction, atlas, settings, previews, budget or DecodeBudget(), family)
            if known is not None:
                known.put(key, found)
        else:
            fresh = [o.url for o in prediction.outputs]
            found = ([i.model_copy(update={"url": fresh[n]}) if i.url else i for n, i in enumerate(found[0])], found[1])
        outputs, images = found
    else:
        outputs = [_plain_info(output) for output in prediction.outputs]

    result = GenerationResult(
        prediction_id=prediction.id,
        model=prediction.model,
        status=prediction.status,
        phase=prediction.phase,
        outputs=outputs,
        price_usd=prediction.price,
        quote=quote,
        error=prediction.error if prediction.phase == "failed" else None,
        error_code=prediction.error_code,
        predict_time_seconds=prediction.predict_time,
        waited_seconds=round(waited_seconds, 2),
        not_used=list(not_used),
        next_step=_next_step(prediction, family),
        reused=reused_after is not None,
        spend=spend,
        transcript=await _transcript(prediction, heard, settings) if heard is not None else None,
    )
    text = _summary(result)
    if reused_after is not None:
        text = (
            f"Not sent again: the same request was sent {reused_after:.0f} s ago as prediction {prediction.id}, so "
            "this is that prediction and nothing was paid twice. To pay for a new one anyway, call again with "
            f"repeat=true.\n{text}"
        )
    shown = tuple(preview.encoded for preview in images if preview is not None)
    return Outcome(result=result, text=text, previews=shown)


def render(
    outcome: Outcome, *, lead: str | None = None, notes: Sequence[str] = (), extra: Mapping[str, Shown] | None = None
) -> CallToolResult:
    """The one place a generating call's result is assembled: ``lead`` said first (a model choice), the outcome's
    text, its previews, links to its full-size outputs, then ``notes``; ``extra`` joins the structured result
    (the gallery's ``view``, quick_generate's ``choice``)."""
    result = outcome.result
    content: list[TextContent | ImageContent | ResourceLink] = [
        TextContent(text=f"{lead}\n{outcome.text}" if lead else outcome.text)
    ]
    content += [ImageContent(data=encoded, mime_type="image/jpeg") for encoded in outcome.previews]
    if result.prediction_id is not None:
        content += _links(result.prediction_id, result.outputs)
    content += [TextContent(text=note) for note in notes]
    structured = result.model_dump(mode="json")
    structured |= {name: value.model_dump(mode="json") for name, value in (extra or {}).items()}
    return CallToolResult(content=list(content), structured_content=structured, is_error=outcome.is_error)


async def _fetched_outputs(
    prediction: Prediction,
    atlas: AtlasClient,
    settings: Settings,
    previews: bool,
    budget: DecodeBudget,
    family: Family,
) -> tuple[list[OutputInfo], list[Preview | None]]:
    """A finished prediction's outputs, fetched in parallel (each within its share of the preview budget), and
    the previews to show: a thumbnail when no output gave one."""
    fetching = prediction.outputs[:MAX_FETCHED_OUTPUTS]
    budget_each = settings.preview_budget_kb * 1024 // len(fetching) if previews else 0
    fetched: list[tuple[OutputInfo, Preview | None]] = [(_plain_info(o), None) for o in prediction.outputs]
    skipped = f"not fetched: only the first {MAX_FETCHED_OUTPUTS} outputs of a prediction are fetched"
    for index in range(MAX_FETCHED_OUTPUTS, len(fetched)):
        fetched[index] = (fetched[index][0].model_copy(update={"note": skipped}), None)

    async def fetch(index: int, output: Output) -> None:
        try:
            fetched[index] = await _fetch_output(
                prediction.id, index, output, atlas, settings, budget_each, budget, family
            )
        except Exception as exc:  # a defect, or a file built to break us: this output gets a note, not the call
            logger.exception("output %d of prediction %s could not be handled", index, prediction.id)
            note = f"not fetched: handling it failed unexpectedly ({type(exc).__name__})"
            fetched[index] = (_plain_info(output).model_copy(update={"note": note}), None)

    async with anyio.create_task_group() as group:
        for index, output in enumerate(fetching):
            group.start_soon(fetch, index, output)
    outputs = [info for info, _ in fetched]
    images = [preview for _, preview in fetched]
    shows_image = any(image is not None for image in images)
    if (not previews or not shows_image) and prediction.thumbnail and settings.preview_budget_kb > 0:
        images.append(await _thumbnail(prediction, atlas, settings, budget))
    return outputs, images


async def _transcript(prediction: Prediction, heard: Transcript, settings: Settings) -> TranscriptInfo:
    """The transcript for the result, saved in full as ``<id>-0.txt`` and ``<id>-0.json`` when saving is on."""
    segments = [SegmentInfo(start=s.start, end=s.end, text=s.text) for s in heard.segments]
    info = TranscriptInfo(
        text=heard.text[:MAX_TRANSCRIPT_CHARS],
        truncated=len(heard.text) > MAX_TRANSCRIPT_CHARS,
        language=heard.language,
        segments=segments[:MAX_SEGMENTS],
        segment_count=len(segments),
    )
    if settings.output_dir is None:
        return info
    document = {
        "prediction_id": prediction.id,
        "model": prediction.model,
        "language": heard.language,
        "text": heard.text,
        "segments": [segment.model_dump(mode="json") for segment in segments],
    }
    try:
        text_path = output_path(settings.output_dir, prediction.id, 0, ".txt")
        json_path = output_path(settings.output_dir, prediction.id, 0, ".json")
        await anyio.to_thread.run_sync(_write_atomically, text_path, heard.text.encode() + b"\n")
        if segments:  # the .json is for the timings; text alone (lyrics, a plain transcript) is all in the .txt
            encoded = json.dumps(document, ensure_ascii=False, indent=2).encode()
            await anyio.to_thread.run_sync(_write_atomically, json_path, encoded)
    except (OSError, AtlasMCPError) as exc:
        return info.model_copy(update={"note": f"not saved: {getattr(exc, 'strerror', None) or exc}"})
    saved_json = str(json_path) if segments else None
    return info.model_copy(update={"saved_text_path": str(text_path), "saved_json_path": saved_json})


async def _thumbnail(
    prediction: Prediction, atlas: AtlasClient, settings: Settings, budget: DecodeBudget
) -> Preview | None:
    """A video's still, when Atlas gives one, as its inline preview (never saved: the video is the output)."""
    assert prediction.thumbnail is not None
    unsaved = settings.model_copy(update={"output_dir": None})
    try:
        _info, preview = await _fetch_output(
            prediction.id,
            -1,
            Output(url=prediction.thumbnail),
            atlas,
            unsaved,
            settings.preview_budget_kb * 1024,
            budget,
        )
    except Exception:  # a broken still costs the preview, never the result
        logger.warning("no preview from the thumbnail of %s", prediction.id, exc_info=True)
        return None
    return preview


def _links(prediction_id: str, outputs: Sequence[OutputInfo]) -> list[ResourceLink]:
    """The full-size outputs as resource links (a few hundred bytes each): the URL at Atlas, else the saved file."""
    links = []
    for number, output in enumerate(outputs, start=1):
        uri = output.url or (Path(output.saved_path).as_uri() if output.saved_path else None)
        if uri is None:
            continue
        try:
            link = ResourceLink(
                uri=uri,
                name=f"{prediction_id}-{number}",
                title=f"Output {number} of prediction {prediction_id}",
                mime_type=output.media_type,
                size=output.size_bytes,
            )
        except ValidationError:  # Atlas's URL, not ours: one that is not a URI stays in the text, unlinked
            continue
        links.append(link)
    return links


def upload_result(uploaded: UploadedFile, *, filename: str, content_type: str, size: int) -> CallToolResult:
    result = UploadResult(
        url=uploaded.download_url,
        filename=uploaded.filename or filename,
        content_type=uploaded.content_type or content_type,
        size_bytes=uploaded.size if uploaded.size is not None else size,
    )
    text = (
        f"Uploaded {result.filename} ({_human_bytes(result.size_bytes)}, {result.content_type}).\n"
        f"URL: {result.url}\n"
        "Pass this URL as a model input, e.g. the `image` argument of generate_image."
    )
    return CallToolResult(content=[TextContent(text=text)], structured_content=result.model_dump(mode="json"))


def _plain_info(output: Output) -> OutputInfo:
    """What is known of an output without fetching it."""
    if output.url is not None:
        return OutputInfo(url=output.url)
    if output.data is not None:
        return OutputInfo(inline=True, size_bytes=len(output.data), note=_INLINE_NOTE)
    return OutputInfo(text=output.describe())


async def _fetch_output(
    prediction_id: str,
    index: int,
    output: Output,
    atlas: AtlasClient,
    settings: Settings,
    preview_budget: int,
    budget: DecodeBudget,
    family: Family = "image",
) -> tuple[OutputInfo, Preview | None]:
    """Fetch (or take the inline bytes of) one output, save it and make its preview, as the settings ask.

    What the file is decides what is done with it, and is decided from its head before the rest is read: an
    output that will be neither shown nor saved is not downloaded."""
    url = output.url
    if url is None and output.data is None:
        return _plain_info(output), None  # a text output: nothing to fetch
    saving = settings.output_dir is not None
    plan = plan_for(family, saving=saving, previews=preview_budget > 0, url_extension=_url_extension(url or ""))
    if output.data is not None:
        plan = plan_for(family, saving=saving, previews=preview_budget > 0, url_extension="")
    if not plan.fetch:
        return _plain_info(output), None
    kept = None  # saved by this server before a restart, or by another replica: not downloaded again
    if settings.output_dir is not None and output.data is None:
        kept = await anyio.to_thread.run_sync(_saved_as_named, settings.output_dir, prediction_id, index)
    if output.data is not None:
        data = output.data
    elif kept is not None:
        data = kept[1]
    else:
        assert url is not None
        downloaded = await _download(url, atlas, saving=saving, about=(index, prediction_id))
        if isinstance(downloaded, OutputInfo):
            return downloaded, None
        data = downloaded
    media = await anyio.to_thread.run_sync(identify_output, data)
    notes: list[str] = []
    saved: str | None = None
    if saving and media is None:
        # An .exe, .hta, .html, .desktop or an SVG with script must not land in the user's folder under any name.
        notes.append(
            "not saved: the file is not a recognised image, video, audio, 3D model or archive (its URL still works)"
        )
    elif kept is not None:
        saved = str(kept[0])
    elif settings.output_dir is not None and media is not None:
        try:
            target = output_path(settings.output_dir, prediction_id, index, media.extension)
            await anyio.to_thread.run_sync(_write_atomically, target, data)
            saved = str(target)
        except (OSError, AtlasMCPError) as exc:
            notes.append(f"not saved: {getattr(exc, 'strerror', None) or exc}")
    if media is not None and (label := solid_label(media, len(data))) is not None:
        notes.insert(0, label)
    preview = None
    probe = None
    if plan.preview and media is not None and media.is_image:
        preview, probe = await _preview(data, settings, preview_budget, budget, notes, (index, prediction_id))
    if output.inline and saved is None and settings.output_dir is None:
        notes.append(_INLINE_NOTE)
    return (
        OutputInfo(
            url=url,
            inline=output.inline,
            saved_path=saved,
            preview=preview is not None,
            width=probe.width if probe and probe.width else None,
            height=probe.height if probe and probe.height else None,
            size_bytes=len(data),
            media_type=media.mime if media is not None else None,
            note="; ".join(notes) or None,
        ),
        preview,
    )


async def _preview(
    data: bytes,
    settings: Settings,
    preview_budget: int,
    budget: DecodeBudget,
    notes: list[str],
    which: tuple[int, str],
) -> tuple[Preview | None, Any]:
    """An inline preview of an image within the byte and memory budgets, or None with a note saying why."""
    probe = await anyio.to_thread.run_sync(lambda: probe_image(data, max_side=settings.preview_max_side))
    if probe is None:
        notes.append("no inline preview: the image could not be decoded")
        return None, None
    if not budget.fits(probe.decoded_bytes):
        notes.append(
            f"no inline preview: at {probe.width}×{probe.height} it would take {probe.decoded_bytes >> 20} MiB to "
            "decode, more than the server allows; the saved file and the URL have it"
        )
        return None, probe
    try:
        async with budget.hold(probe.decoded_bytes):
            preview = await anyio.to_thread.run_sync(
                lambda: make_preview(data, max_side=settings.preview_max_side, max_base64_bytes=preview_budget)
            )
    except Exception as exc:  # a broken or hostile file makes Pillow raise nearly anything
        logger.warning("no preview for output %d of %s", *which, exc_info=True)
        notes.append(f"no inline preview: the image could not be decoded ({type(exc).__name__})")
        return None, probe
    if preview is None:
        notes.append("no inline preview: the image could not be shrunk into the result's size budget")
    return preview, probe


def _may_be_image(head: bytes) -> bool:
    """Whether a file's first bytes could start an image a preview can be made of (Pillow judges the whole)."""
    signatures = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
    return (
        head.startswith(signatures)
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head[4:12]
        in (
            b"ftypavif",
            b"ftypavis",
        )
    )


def _text_info(output: Output) -> OutputInfo:
    """A text family's output: its words (never a link to fetch, even when they look like one), in short."""
    if output.inline:
        return _plain_info(output)
    text = output.url or output.text or ""
    short = text if len(text) <= 300 else text[:299] + "…"
    return OutputInfo(text=short, note="text: the whole of it is in `transcript`" if short != text else None)


async def _download(url: str, atlas: AtlasClient, *, saving: bool, about: tuple[int, str]) -> bytes | OutputInfo:
    """An output's bytes; or, when it is not worth reading whole or cannot be read, what to say of it instead."""

    def wanted(_content_type: str | None, head: bytes) -> bool:
        # Saved whatever it is (its kind is judged whole, later); else read on only for a picture to show.
        return saving or _may_be_image(head)

    try:
        data, _announced, complete = await atlas.download_head_first(url, max_bytes=MAX_OUTPUT_BYTES, wanted=wanted)
    except AtlasMCPError as exc:
        logger.info("output %d of %s not fetched: %s", *about, exc)
        return OutputInfo(url=url, note=f"not fetched: {exc}")
    if not complete:
        solid = identify_solid(data)
        what = solid_label(solid, None) if solid is not None else "not an image"
        note = f"not downloaded: {what}, so no preview; set ATLASCLOUD_OUTPUT_DIR to keep such files"
        return OutputInfo(url=url, media_type=solid.mime if solid else None, note=note)
    return data


def _saved_as_named(output_dir: Path, prediction_id: str, index: int) -> tuple[Path, bytes] | None:
    """An output saved before, if its bytes are what its name says (else it is fetched and saved afresh)."""
    kept = read_saved_output(output_dir, prediction_id, index, MAX_OUTPUT_BYTES)
    media = identify_output(kept[1]) if kept is not None else None
    return kept if kept is not None and media is not None and media.extension == kept[0].suffix else None


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)  # mkstemp makes it private; an output image is meant to be opened by the user's apps
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _url_extension(url: str) -> str:
    try:
        path = urlsplit(url).path
    except ValueError:  # Atlas's text, not ours: an unparsable URL has no extension to go by
        return ""
    return os.path.splitext(path)[1].lower()[:8]


def _next_step(prediction: Prediction, family: Family) -> str | None:
    if prediction.status == NOT_VISIBLE_YET:
        return (
            f'Atlas accepted prediction "{prediction.id}" but does not show it yet (this can take a few seconds). '
            f"{usual_duration(family, prediction.model)}. Call check_prediction with this id and wait=true in a "
            "moment; do not submit the generation again."
        )
    if prediction.phase == "running":
        return (
            f"{usual_duration(family, prediction.model)}. Call check_prediction with prediction_id "
            f'"{prediction.id}" and wait=true to get the result; do not submit the generation again (that would be '
            "paid twice)."
        )
    return None


def _summary(result: GenerationResult) -> str:
    lines: list[str] = []
    model = result.model or "the model"
    if result.phase == "succeeded":
        count = len(result.outputs)
        if result.price_usd is not None:
            cost = f" Cost: ${result.price_usd:.4g}."
        elif result.quote is not None:
            cost = f" Quoted: {result.quote.text()}."
        else:
            cost = ""
        # Atlas's compute time, named as such: the caller waited longer (the queue, the polls, the download).
        took = (
            f" (Atlas computed for {result.predict_time_seconds:.1f} s)"
            if result.predict_time_seconds is not None
            else ""
        )
        lines.append(f"Done: {count} output{'s' if count != 1 else ''} from {model}{took}.{cost}")
        lines.append(f"Prediction id: {result.prediction_id}")
        for number, output in enumerate(result.outputs, start=1):
            if output.text is not None and result.transcript is not None:
                continue  # the transcript's text, given in full below
            size = f" ({output.width}×{output.height})" if output.width and output.height else ""
            where = output.url or output.text or f"sent inline by Atlas ({_human_bytes(output.size_bytes or 0)})"
            lines.append(f"Output {number}{size}: {where}")
            if output.saved_path:
                lines.append(f"  saved to {output.saved_path}")
            if output.note:
                lines.append(f"  {output.note}")
    elif result.phase == "running":
        lines.append(
            f"Prediction {result.prediction_id} is {result.status} after {result.waited_seconds:g} s of waiting; "
            "it goes on running at Atlas."
        )
        if result.quote is not None:
            lines.append(f"Quoted before submitting: {result.quote.text()}.")
    else:
        lines.append(f"Prediction {result.prediction_id} ended {result.status}.")
        if result.error:
            code = f" (Atlas error code {result.error_code})" if result.error_code else ""
            lines.append(f"Atlas said: {result.error}{code}")
    if result.transcript is not None:
        lines += _transcript_lines(result.transcript)
    if result.not_used:
        lines.append("Not used: " + "; ".join(result.not_used))
    if result.next_step:
        lines.append(result.next_step)
    if result.spend is not None:
        lines.append(result.spend.text())
    return "\n".join(lines)


def _transcript_lines(transcript: TranscriptInfo) -> list[str]:
    facts = [transcript.language] if transcript.language else []
    if transcript.segment_count:
        facts.append(f"{transcript.segment_count} segment{'s' if transcript.segment_count != 1 else ''}")
    said = f" ({', '.join(facts)})" if facts else ""
    lines = [f"Transcript{said}:", transcript.text or "(no speech heard)"]
    if transcript.truncated:
        lines.append(f"(cut at {MAX_TRANSCRIPT_CHARS:,} characters; the saved .txt file has all of it)")
    if transcript.segments:
        lines.append("Segments:")
        lines += [
            f"[{_clock(segment.start)}–{_clock(segment.end)}] {segment.text}"
            for segment in transcript.segments[:SEGMENTS_IN_TEXT]
        ]
        if transcript.segment_count > SEGMENTS_IN_TEXT:
            more = transcript.segment_count - SEGMENTS_IN_TEXT
            lines.append(f"(and {more} more: see the structured result or the .json file)")
    if transcript.saved_text_path:
        also = f" and {transcript.saved_json_path}" if transcript.saved_json_path else ""
        lines.append(f"Saved to {transcript.saved_text_path}{also}")
    if transcript.note:
        lines.append(f"Transcript {transcript.note}")
    return lines


def _clock(seconds: float | None) -> str:
    """Seconds as m:ss.s (or ? when the model gave no time)."""
    if seconds is None:
        return "?"
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"
