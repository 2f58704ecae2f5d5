"""Load a FiftyOne dataset directory with real FiftyOne; write what it read as JSON.

Run with a Python that has ``fiftyone`` installed::

    python tests/fiftyone_load.py DATASET_DIR OUT.json

The JSON holds the field schema FiftyOne built (each field's type and, for
embedded documents, the document type), every sample's fields by ``video_uid``
(datetimes as ISO text) and the number of clips of ``gpt_action_brief``.
"""

import json
import sys

import fiftyone as fo
import fiftyone.core.fields as fof

TEMPORAL = "TemporalDetections"


def field_type(field) -> list:
    document = getattr(field, "document_type", None)
    return [type(field).__name__, document.__name__ if document else None]


def detections(label) -> list | None:
    if label is None:
        return None
    return [
        {
            "id": d.id,
            "label": d.label,
            "support": list(d.support),
            **{
                name: d[name]
                for name in ("node_id", "parent_id", "level", "start", "end")
                if d.has_field(name)
            },
        }
        for d in label.detections
    ]


def main(folder: str, out: str) -> None:
    dataset = fo.Dataset.from_dir(folder, dataset_type=fo.types.FiftyOneDataset)
    try:
        schema = dataset.get_field_schema()
        samples = {}
        for sample in dataset:
            values = {"media_type": sample.media_type, "filepath": sample.filepath}
            for name, field in schema.items():
                value = sample[name]
                if field_type(field)[1] == TEMPORAL:
                    values[name] = detections(value)
                elif isinstance(field, fof.DateTimeField) and value is not None:
                    values[name] = value.isoformat()
                elif isinstance(value, str | int | float | type(None)):
                    values[name] = value
            samples[sample["video_uid"]] = values
        clips = dataset.to_clips("gpt_action_brief")
        with open(out, "w") as handle:
            json.dump(
                {
                    "schema": {name: field_type(f) for name, f in schema.items()},
                    "samples": samples,
                    "clips": len(clips),
                },
                handle,
            )
    finally:
        dataset.delete()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
