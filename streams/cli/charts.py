"""``segmenter report --chart``: segment sizes per dimension as bars (customers, with the share of amount_12m
written on each), and with ``--since`` the largest moves between segments. matplotlib, without a display."""

from __future__ import annotations

from pathlib import Path

from streams.cli.common import CliError
from streams.readmodel.movement import Movement
from streams.readmodel.pareto import ParetoRow

TOP_MOVES = 12


def draw(path: Path, rows: list[ParetoRow], moved: Movement | None) -> None:
    if path.suffix.lower() not in (".png", ".svg"):
        raise CliError(f"--chart {path}: write a .png or an .svg file")
    try:
        import matplotlib  # the 'charts' extra, loaded only for a chart
    except ImportError:
        raise CliError("--chart needs the 'charts' extra: pip install 'segmenter[charts]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r.dimension for r in rows})
    moves = sorted(moved.moves.items(), key=lambda m: -m[1].customers)[:TOP_MOVES] if moved else []
    panels = len(dims) + (1 if moves else 0)
    if not panels:
        raise CliError("nothing to draw: the read model holds no classified customer yet")
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3.2 * panels), squeeze=False)
    for ax, dim in zip(axes[:, 0], dims, strict=False):
        mine = [r for r in rows if r.dimension == dim]
        bars = ax.barh([r.segment for r in mine][::-1], [r.customers for r in mine][::-1], color="#4c78a8")
        for bar, r in zip(bars, mine[::-1], strict=True):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                    f" {r.customers:,} ({r.share:.1f}%), {r.amount_share:.1f}% of amount", va="center", fontsize=8)
        ax.set_title(f"{dim}: customers per segment")
        ax.margins(x=0.35)
    if moves:
        ax = axes[-1, 0]
        labels = [f"{d}: {f} -> {t}" for (d, f, t), _ in moves][::-1]
        ax.barh(labels, [m.customers for _, m in moves][::-1], color="#f58518")
        ax.set_title(f"movement since {moved.since:%Y-%m-%d %H:%M} (stream time)" if moved and moved.since
                     else "movement")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
