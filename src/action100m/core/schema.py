"""The Arrow schema of the released Action100M parquet, field for field."""

import pyarrow as pa

TRANSCRIPT_ENTRY = pa.struct([("time", pa.string()), ("text", pa.string())])

METADATA = pa.struct(
    [
        ("title", pa.string()),
        ("description", pa.string()),
        ("view_count", pa.int64()),
        ("like_count", pa.int64()),
        ("duration", pa.int64()),
        ("upload_date", pa.string()),
        ("transcript", pa.list_(TRANSCRIPT_ENTRY)),
    ]
)

GPT = pa.struct(
    [
        ("summary", pa.struct([("brief", pa.string()), ("detailed", pa.string())])),
        (
            "action",
            pa.struct(
                [
                    ("brief", pa.string()),
                    ("detailed", pa.string()),
                    ("actor", pa.string()),
                ]
            ),
        ),
    ]
)

# The five text fields of ``gpt`` as (group, key): ("summary", "brief"), ...
GPT_FIELDS = tuple((group.name, key.name) for group in GPT for key in group.type)

NODE = pa.struct(
    [
        ("node_id", pa.string()),
        ("parent_id", pa.string()),
        ("level", pa.int16()),
        ("start", pa.float32()),
        ("end", pa.float32()),
        ("plm_action", pa.string()),
        ("plm_caption", pa.string()),
        ("llama3_caption", pa.string()),
        ("gpt", GPT),
    ]
)

RELEASE_SCHEMA = pa.schema(
    [
        ("video_uid", pa.string()),
        ("metadata", METADATA),
        ("nodes", pa.list_(NODE)),
    ]
)

METADATA_FIELDS = tuple(f.name for f in METADATA)


def schema_differences(schema: pa.Schema) -> list[str]:
    """List how ``schema`` differs from the release schema (empty when equal).

    Args:
        schema: The schema to compare; schema-level metadata is ignored.

    Returns:
        Human-readable differences, one per top-level field.
    """
    if schema.equals(RELEASE_SCHEMA, check_metadata=False):
        return []
    problems = []
    expected = {f.name: f.type for f in RELEASE_SCHEMA}
    found = {f.name: f.type for f in schema}
    for name, typ in expected.items():
        if name not in found:
            problems.append(f"missing column {name!r} ({typ})")
        elif not found[name].equals(typ):
            problems.append(f"column {name!r} has type {found[name]}, expected {typ}")
    problems += [
        f"unexpected column {name!r}" for name in found if name not in expected
    ]
    if not problems and list(found) != list(expected):
        problems.append(f"columns in order {list(found)}, expected {list(expected)}")
    return problems or ["schema differs from the release schema"]
