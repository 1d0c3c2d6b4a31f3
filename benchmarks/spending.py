"""8. Spend safety's cost: what the quote and the state store add to each generation, against a bare submit.

Per generation, a paid call makes Atlas's quote (one POST to /api/v1/model/calculate) and these store steps:
the payer's hash, a look in the repeat index and at the budget (the gate), then the claim, the reservation and
the "sent" mark (the purchase), then the settlement and the report (after the prediction). Each part is timed
on its own, in process, against the in-process emulator and each backend: memory, SQLite in a temporary
folder, and a real redis-server on loopback.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
from pydantic import SecretStr

from atlas_mcp.atlas import AtlasClient, Prediction
from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, EmulatorConfig
from atlas_mcp.spend.policy import SpendGuard
from atlas_mcp.state import MemoryStore, StateStore
from atlas_mcp.state.redis_store import RedisStore
from atlas_mcp.state.sqlite_store import SqliteStore
from benchmarks.report import Section, Table, Target, ms, percentile
from benchmarks.rpc import BENCH_KEY, Workspace

MODEL = "black-forest-labs/flux-schnell"
TARGET_STORE = 0.005  # the default store's steps for one generation, p50: a few ms next to seconds of generation


@contextmanager
def redis_server(root: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def timed(step: Callable[[], Awaitable[object]], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await step()
        samples.append(time.perf_counter() - started)
    return samples


async def measure(emulator: Emulator, stores: dict[str, StateStore | None], calls: int) -> dict[str, list[float]]:
    settings = Settings(api_key=SecretStr(BENCH_KEY), base_url=emulator.url, budget_usd=1_000_000)
    async with AtlasClient(api_key=BENCH_KEY, base_url=emulator.url) as atlas:
        for _ in range(20):  # warm the connection pool and the emulator
            await atlas.submit(MODEL, {"prompt": "warm-up"}, kind="image")
            await atlas.quote(MODEL, {"prompt": "warm-up"})
        samples = {
            "submit": await timed(lambda: atlas.submit(MODEL, {"prompt": "bench"}, kind="image"), calls),
            "quote": await timed(lambda: atlas.quote(MODEL, {"prompt": "bench"}), calls),
        }
    done = Prediction(id="0" * 32, status="completed", price=0.003)
    for name, store in stores.items():
        if store is None:
            continue
        guard = SpendGuard(settings, store)
        number = 0

        async def one_generation(guard: SpendGuard = guard) -> None:
            nonlocal number
            number += 1
            payer = await guard.payer(BENCH_KEY)
            key = guard.repeat_key(payer, MODEL, {"prompt": f"bench {number}"}, None)
            await guard.earlier(key)
            await guard.budget_problem(payer, 0.003)

            async def submit() -> Prediction:
                return done

            async def waiting(_: float) -> None:
                return None

            purchase, _ = await guard.buy(
                payer, repeat_key=key, price_usd=0.003, once=None, confirmed=True, submit=submit, waiting=waiting
            )
            await guard.settle(purchase, done)
            await guard.report(payer)

        await timed(one_generation, 20)
        samples[name] = await timed(one_generation, calls)
    return samples


def run(ws: Workspace, *, calls: int = 300) -> Section:
    with (
        Emulator(EmulatorConfig(prediction_seconds=3600)) as emulator,
        tempfile.TemporaryDirectory(dir=ws.root) as scratch,
        redis_server(Path(scratch)) as redis_url,
    ):
        stores: dict[str, StateStore | None] = {
            "memory (tests only)": MemoryStore(),
            "SQLite (default)": SqliteStore(Path(scratch) / "state.db"),
            "Redis": RedisStore(redis_url) if redis_url else None,
        }

        async def main() -> dict[str, list[float]]:
            try:
                return await measure(emulator, stores, calls)
            finally:
                for store in stores.values():
                    if store is not None:
                        await store.aclose()

        samples = anyio.run(main)
    floor = percentile(samples["submit"], 50)
    quote = percentile(samples["quote"], 50)

    def row(name: str, values: list[float], added: float | None = None) -> tuple[str, ...]:
        share = f"{added / floor:.0%}" if added is not None else ""
        return (name, ms(percentile(values, 50), 2), ms(percentile(values, 95), 2), share)

    rows = [
        row("floor: a bare submit (one POST, httpx)", samples["submit"]),
        row("Atlas's quote (one POST)", samples["quote"], percentile(samples["quote"], 50)),
    ]
    for name in stores:
        if name in samples:
            store_p50 = percentile(samples[name], 50)
            rows.append(row(f"store steps of one generation: {name}", samples[name], store_p50))
            rows.append(
                (f"**quote + store, {name}**", ms(quote + store_p50, 2), "", f"{(quote + store_p50) / floor:.0%}")
            )
        else:
            rows.append((f"store steps: {name}", "not run (redis-server is not installed)", "", ""))
    sqlite_store = percentile(samples["SQLite (default)"], 50)
    return Section(
        title="8. Spend safety: the added cost per generation",
        tables=[
            Table(
                ("part", "p50", "p95", "as a share of the floor"),
                rows,
                caption=(
                    f"{calls} of each, in process, against the in-process emulator. Store steps: payer hash, repeat "
                    "look-up, budget read, claim, reservation, sent mark, settlement, report."
                ),
            )
        ],
        notes=[
            "The floor is a loopback emulator, the hardest comparison for us: against the real Atlas both POSTs "
            "cross the internet, so the quote costs about what a submit does, and the store's milliseconds "
            "vanish next to a generation's seconds.",
        ],
        targets=[
            Target(
                "SQLite store steps per generation, p50",
                f"{ms(sqlite_store, 2)} (+ quote {ms(quote, 2)}; floor {ms(floor, 2)})",
                f"< {ms(TARGET_STORE, 0)}",
                sqlite_store < TARGET_STORE,
            )
        ],
    )
