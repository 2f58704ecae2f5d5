"""Load a FiftyOne dataset directory with real FiftyOne; write its labels as JSON.

Run with a Python that has ``fiftyone`` installed::

    python tests/fiftyone_load.py DATASET_DIR OUT.json
"""

import json
import sys

import fiftyone as fo


def main(folder: str, out: str) -> None:
    dataset = fo.Dataset.from_dir(folder, dataset_type=fo.types.FiftyOneDataset)
    try:
        fields = [
            name for name in dataset.get_field_schema() if name.startswith("gpt_")
        ]
        samples = {}
        for sample in dataset:
            labels = {}
            for name in fields:
                labels[name] = [
                    {
                        "id": d.id,
                        "label": d.label,
                        "support": list(d.support),
                        "node_id": d["node_id"],
                        "parent_id": d["parent_id"],
                        "level": d["level"],
                    }
                    for d in sample[name].detections
                ]
            samples[sample["video_uid"]] = {
                "media_type": sample.media_type,
                "filepath": sample.filepath,
                "labels": labels,
            }
        clips = dataset.to_clips("gpt_action_brief")
        with open(out, "w") as handle:
            json.dump({"samples": samples, "clips": len(clips)}, handle)
    finally:
        dataset.delete()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
