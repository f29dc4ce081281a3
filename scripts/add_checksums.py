"""Give folders saved by personalize before format version 2 the sha256 checksums of their tensor files.

Since version 2 every saved model's JSON records ``checksums`` (file name -> sha256) and loading
refuses a tensor file that does not match. A version 1 folder still loads, unchecked; this script
upgrades it in place: each tensor file is first read and checked (a safetensors file, no NaN or
infinite value), then its sha256 is written into the JSON with ``format_version`` 2. Nothing else in
the JSON changes (same keys, order and indentation); tensors are never rewritten. Folders already at
version 2 are left as they are, so a second run is a no-op.

    python scripts/add_checksums.py personalize/pretrained        # how the shipped models got theirs
    python scripts/add_checksums.py path/to/my-task path/to/my-recommender
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from personalize.errors import PersonalizeError
from personalize.files import load_checked_tensors, sha256_file

# JSON "format" -> the tensor file a folder of that format holds beside its JSON.
TENSOR_FILES = {
    "personalize-learner": "meta_parameters.safetensors",
    "personalize-text-classifier": "zero_shot_state.safetensors",
    "personalize-task": "task_state.safetensors",
    "personalize-recommender": "tables.safetensors",
}


def dumped(document: dict, like: str) -> str:
    """``document`` as JSON in the layout of the text ``like`` (indentation, final newline)."""
    for indent in (2, 1, None, 4):
        for end in ("\n", ""):
            if json.dumps(json.loads(like), indent=indent) + end == like:
                return json.dumps(document, indent=indent) + end
    return json.dumps(document, indent=2) + "\n"


def upgrade(config_file: Path) -> str:
    """Add checksums to one JSON file; returns what was done, for the log."""
    text = config_file.read_text(encoding="utf-8")
    document = json.loads(text)
    tensor_file = TENSOR_FILES.get(document.get("format")) if isinstance(document, dict) else None
    if tensor_file is None:
        return f"skipped {config_file}: not a personalize model file"
    if document.get("format_version") != 1:
        return f"kept {config_file}: already format version {document.get('format_version')}"
    load_checked_tensors(config_file.parent, tensor_file, document, what=document["format"],
                         config_name=config_file.name)  # refuses a damaged file before blessing it
    checksum = sha256_file(config_file.parent / tensor_file)
    upgraded = {**document, "format_version": 2, "checksums": {tensor_file: checksum}}
    staging = config_file.with_name(f".{config_file.name}.upgrading")
    staging.write_text(dumped(upgraded, text), encoding="utf-8")
    os.replace(staging, config_file)
    return f"upgraded {config_file}: {tensor_file} {upgraded['checksums'][tensor_file][:12]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="saved folders, or folders to search for them")
    args = parser.parse_args(argv)
    try:
        for folder in args.folders:
            if not folder.is_dir():
                raise PersonalizeError(f"{folder} is not a folder")
            for config_file in sorted(folder.rglob("*.json")):
                print(upgrade(config_file))
    except PersonalizeError as error:
        print(f"add_checksums: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
