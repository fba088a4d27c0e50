"""`pseudosup` under a profiler (tests/conftest.py installs it as the `pseudosup` on PATH of
a traced build): runs the command and writes, to $PSEUDOSUP_TRACE/<pid>.json, its argv and
every package file in which a function was called (module import-time code aside)."""
import json
import os
import sys
import threading

hit = set()


def prof(frame, event, arg):
    code = frame.f_code
    if event == "call" and "/src/pseudosup/" in code.co_filename and code.co_name != "<module>":
        hit.add(code.co_filename)


sys.setprofile(prof)
threading.setprofile(prof)
from pseudosup.cli import main  # noqa: E402

try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
finally:
    sys.setprofile(None)
    with open(os.path.join(os.environ["PSEUDOSUP_TRACE"], f"{os.getpid()}.json"), "w") as fh:
        json.dump({"argv": sys.argv[1:], "files": sorted(hit)}, fh)
sys.exit(rc)
