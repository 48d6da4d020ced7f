"""The two pictures: warm latency percentiles per path (``latency.png``) and cold start and memory
against key count on log-log axes (``scaling.png``). matplotlib with the Agg backend (no display)."""

from __future__ import annotations

from pathlib import Path

OURS = "#1f77b4"
REDIS = "#d62728"
PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"))
AIMS = ((0.1, "aim: 0.1 ms in the handler"), (2.0, "aim: 2 ms p50 via gateway"))  # issue 2


def write_charts(results: dict, folder: Path) -> list[str]:
    """Write the charts that the results allow; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    warm = results["measurements"].get("warm", {})
    if "streamcache" in warm:
        _latency_chart(plt, warm, results, folder / "latency.png")
        written.append("latency.png")
    scaling = results["measurements"].get("scaling", {})
    if scaling.get("streamcache"):
        _scaling_chart(plt, scaling, results, folder / "scaling.png")
        written.append("scaling.png")
    return written


def _latency_rows(warm: dict, op: str) -> list[tuple[str, dict, str]]:
    ours, theirs = warm["streamcache"], warm.get("redis", {})
    rows = [("streamcache, in the handler", ours["handler"][op], OURS),
            ("streamcache, FDK socket", ours["fdk_socket"][op], OURS),
            ("streamcache, gateway", ours["gateway"][op], OURS)]
    conc = ours.get("gateway_concurrent")
    if conc:
        rows.append((f"streamcache, gateway, {conc['clients']} clients", conc[op], OURS))
    if "get" in theirs:
        rows.append(("Redis, redis-py", theirs["get" if op == "get" else "set"], REDIS))
        rows.append((f"Redis, {theirs['concurrent']['clients']} clients", theirs["concurrent"][op], REDIS))
    return rows


def _latency_chart(plt, warm: dict, results: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.6), sharey=True)
    for ax, op, title in ((axes[0], "get", "warm GET"), (axes[1], "put", "warm PUT / SET")):
        rows = _latency_rows(warm, op)
        height = 0.26
        for index, (_, stats, color) in enumerate(rows):
            for offset, (field, _label) in enumerate(PERCENTILES):
                value = stats.get(field)
                if value is None:
                    continue
                ax.barh(index + (offset - 1) * height, value, height, color=color, alpha=0.45 + 0.25 * offset)
                ax.text(value * 1.05, index + (offset - 1) * height, f"{value:.3g}", va="center", fontsize=7)
        ax.set_yticks(range(len(rows)), [label for label, _, _ in rows])
        ax.set_xscale("log")
        ax.set_xlabel("milliseconds (log); bars: p50, p90, p99")
        ax.set_title(title)
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0].invert_yaxis()  # once: the two panels share the y axis; first row on top
    for value, text in AIMS:
        axes[0].axvline(value, color="grey", linestyle="--", linewidth=1)
        axes[0].text(value * 0.97, 0.99, text, fontsize=7, color="grey", ha="right", va="top", rotation=90, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
                     transform=axes[0].get_xaxis_transform())
    from matplotlib.patches import Patch

    legend = [Patch(color=OURS, alpha=0.45 + 0.25 * i, label=f"streamcache {label}") for i, (_, label) in enumerate(PERCENTILES)]
    legend += [Patch(color=REDIS, alpha=0.45 + 0.25 * i, label=f"Redis {label}") for i, (_, label) in enumerate(PERCENTILES)]
    figure.legend(handles=legend, fontsize=8, loc="lower center", ncol=6, frameon=False)
    figure.suptitle(f"streamcache vs Redis, warm requests ({_machine_line(results)})", fontsize=10)
    figure.tight_layout(rect=(0, 0.05, 1, 1))  # room for the legend below the panels
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _scaling_chart(plt, scaling: dict, results: dict, path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    markers = iter("os^D")
    for source, sizes in scaling["streamcache"].items():
        keys = sorted(int(k) for k in sizes)
        marker = next(markers)
        label = f"streamcache ({source.replace('_', ' ')})"
        left.plot(keys, [sizes[str(k)]["first_read_s"] for k in keys], marker=marker, color=OURS, label=label)
        right.plot(keys, [sizes[str(k)]["rss_per_key_bytes"] * k / 2**20 for k in keys], marker=marker, color=OURS,
                   label=f"{label}: resident (RSS) growth")
    theirs = {int(k): v for k, v in scaling.get("redis", {}).items() if k.isdigit()}
    if theirs:
        keys = sorted(theirs)
        left.plot(keys, [theirs[k]["first_read_s"] for k in keys], marker="o", color=REDIS, label="Redis (RDB load)")
        right.plot(keys, [theirs[k]["used_memory_per_key_bytes"] * k / 2**20 for k in keys], marker="o", color=REDIS,
                   label="Redis used_memory growth")
    for ax, title, unit in ((left, "cold start: spawn to first served read", "seconds"),
                            (right, "memory holding the keys", "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("keys (100-byte values, +10 % tail)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(f"How the costs grow with the data ({_machine_line(results)})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _machine_line(results: dict) -> str:
    m = results["machine"]
    return f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, {results['mode']} mode"
