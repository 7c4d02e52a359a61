"""``saunetv2 campaign status | run | pack | ship | checkpoints``: the long training runs, declared in campaigns.json.

Without ``--campaign`` every declared campaign is meant, in the declared order (paper, then
ablation, then baselines): ``run`` goes on with the next campaign once one is done.

Examples::

    saunetv2 campaign status                             # a table of every run
    nohup saunetv2 campaign run --hours 2.5 > runs/campaign/nohup.log 2>&1 &
    saunetv2 campaign run --campaign ablation --hours 2.5  # one campaign only
    saunetv2 campaign run --only stare_paper --hours 10  # one run (e.g. one job of an array)
    saunetv2 campaign run --shard 2/2                    # every second run, from the second
    saunetv2 campaign pack                               # before a stop: commit campaigns/ and results/
    saunetv2 campaign ship --only drive_paper            # a finished run becomes weights/drive.keras
    saunetv2 campaign checkpoints --only stare_paper     # test F1 of every checkpoint it kept
"""

from __future__ import annotations

import argparse
from pathlib import Path

from saunetv2_lib.cli import add_malloc_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="the long training runs: status, run (resumable, time-boxed), pack (for git)",
        description="Train the runs declared in saunetv2_lib/configs/campaigns.json in order, "
        "resuming each where it stopped; `pack` copies unfinished runs' resume state to "
        "campaigns/ and writes the results bundle.",
    )
    parser.add_argument("action", choices=("status", "run", "pack", "ship", "checkpoints"))
    parser.add_argument(
        "--campaign",
        help="comma-separated campaign names (default: every declared campaign, in order)",
    )
    parser.add_argument(
        "--hours", type=float, default=2.5, help="run: stop before this many hours (default 2.5)"
    )
    parser.add_argument("--only", help="run, ship, checkpoints: comma-separated run names")
    parser.add_argument("--shard", help="run: K/N, every N-th run from the K-th (job arrays)")
    parser.add_argument(
        "--precision",
        choices=("float32", "mixed_bfloat16"),
        help="run: the step's dtype policy for every run (over a campaign's declared speed)",
    )
    parser.add_argument(
        "--group-norm",
        choices=("one_pass", "two_stage"),
        help="run: how group-norm statistics are summed (over a campaign's declared speed)",
    )
    add_malloc_argument(parser)
    parser.add_argument("--runs", help="working run folders (default: runs/campaign)")
    parser.add_argument("--packed", help="committed resume state (default: campaigns/)")
    parser.set_defaults(func=_campaign)


def _campaign(args: argparse.Namespace) -> int:
    from saunetv2_lib.experiments import campaign as campaigns

    names = args.campaign.split(",") if args.campaign else campaigns.campaign_names()
    queue = [campaigns.load_campaign(name) for name in names]  # unknown names fail here
    runs_root = args.runs or campaigns.RUNS_ROOT
    packed_root = args.packed or campaigns.PACKED_ROOT
    only = args.only.split(",") if args.only else None
    declared = {spec.name for campaign in queue for spec in campaign.runs}
    if only and not set(only) <= declared:
        raise SystemExit(
            f"saunetv2 campaign: no run {sorted(set(only) - declared)} in {', '.join(names)}."
        )
    if args.action == "status":
        for campaign in queue:
            rows = campaigns.campaign_status(campaign, runs_root, packed_root)
            print(f"campaign {campaign.name}\n{campaigns.format_status(rows)}\n")
    elif args.action == "run":
        speed = {
            key: value
            for key, value in {
                "precision": args.precision,
                "group_norm_statistics": args.group_norm,
            }.items()
            if value is not None
        }
        rows = campaigns.run_queue(
            names, args.hours, only, args.shard, runs_root, packed_root, speed=speed
        )
        print(campaigns.format_status(rows))
    elif args.action == "checkpoints":
        from saunetv2_lib.experiments.checkpoints import score_checkpoints

        for campaign in queue:
            for spec in campaign.runs:
                run_dir = Path(runs_root) / spec.name
                if (only and spec.name not in only) or not (run_dir / "config.json").is_file():
                    continue
                rows = score_checkpoints(spec, run_dir)
                scores = ", ".join(f"epoch {r['epoch']} {100 * r['f1']:.2f}" for r in rows)
                print(f"{spec.name}: test F1 of {len(rows)} checkpoints: {scores}")
        print("then `saunetv2 campaign pack` puts them in the bundle")
    elif args.action == "ship":
        for campaign in queue:
            here = [spec for spec in campaign.runs if not only or spec.name in only]
            for spec in here:
                if not spec.ship_as:
                    continue
                status = campaigns.run_status(spec, Path(runs_root) / spec.name)["status"]
                if status not in campaigns.DONE:
                    print(f"{spec.name}: {status}, not shipped")
                    continue
                card = campaigns.ship_campaign_run(spec, runs_root)
                print(f"{spec.name}: shipped as {card['name']} ({card['sha256'][:12]})")
    else:
        for name, payload in campaigns.pack_queue(names, runs_root, packed_root).items():
            for run, entry in payload["runs"].items():
                where = (
                    "result in the bundle"
                    if "result" in entry
                    else f"{len(entry.get('packed', []))} files packed"
                )
                print(f"{run}: {entry['status']['status']}, {where}")
            print(f"bundle: {campaigns.bundle_path(name)}")
    return 0
