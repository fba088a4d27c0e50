"""List the registered datasets, their sources and protocols, and whether each can be
obtained here.

    pseudosup datasets                      # the table
    pseudosup datasets --check sift-real-small cifar10-test-jpg
                                            # exit 0 when all are available, else 3
                                            # with one line per dataset saying why not

`--check` is how a workflow skips an experiment whose data is absent (e.g. the
real-small experiment without ../shared/data) with a clear message instead of
failing. Availability never downloads anything.
"""

from __future__ import annotations

import sys

from ..stages.common import add_params_args, params_of

HELP = "list datasets and protocols; --check tells whether datasets can be obtained here"
UNAVAILABLE = 3


def add_arguments(p) -> None:
    add_params_args(p, "paths")
    p.add_argument("--check", nargs="+", metavar="DATASET", help="exit 0 if all are available, else 3")


def run(args) -> int:
    from ..data import registry
    from ..data.splits import PROTOCOL_INFO

    params = params_of(args)
    paths = params.get_key("paths") if "paths" in args.keys else {}
    if args.check:
        missing = 0
        for name in args.check:
            ok, why = registry.get(name).available(paths)
            print(f"{name}: {'available' if ok else 'NOT available'}: {why}")
            missing += not ok
        return UNAVAILABLE if missing else 0
    for name in registry.names():
        ds = registry.get(name)
        ok, why = ds.available(paths)
        protos = [p for p, info in sorted(PROTOCOL_INFO.items()) if info["dataset"] == name]
        print(f"{name}  [{ds.kind}; relevance {ds.relevance}; {'available' if ok else 'not available'}: {why}]")
        print(f"    {ds.description}")
        for f in ds.files:
            digest = ", ".join(f"{k} {v[:12]}..." for k, v in f.digests.items()) or f"no digest ({f.check} check)"
            print(f"    file {f.name}: {digest}; {f.urls[0] if f.urls else 'local/provided'}")
        if protos:
            print(f"    protocols: {', '.join(protos)}")
    sys.stdout.flush()
    return 0
