"""Load a tgexport dataset with polars and print a few analyses.

python examples/analyze_polars.py demo-dataset
"""

import sys

import polars as pl


def main(root: str) -> None:
    lf = pl.scan_parquet(f"{root}/posts/", hive_schema={"year": pl.Int16, "month": pl.Int8})
    posts = lf.filter(pl.col("kind") == "message")
    total = lf.select(pl.len()).collect().item()
    print(f"polars: {total} rows, {posts.select(pl.len()).collect().item()} messages")
    per_month = posts.group_by("year", "month").len().sort("year", "month").collect()
    print("posts per month:")
    for year, month, count in per_month.iter_rows():
        print(f"  {year}-{month:02d}: {count}")
    tags = (
        posts.select(pl.col("hashtags").explode())
        .drop_nulls()
        .group_by("hashtags")
        .len()
        .sort(["len", "hashtags"], descending=[True, False])
        .head(5)
        .collect()
    )
    print("top hashtags:", ", ".join(f"#{tag} ({n})" for tag, n in tags.iter_rows()))
    reactions = (
        posts.select(pl.col("reactions").explode().struct.unnest())
        .drop_nulls("emoji")
        .group_by("emoji")
        .agg(pl.col("count").sum())
        .sort("count", descending=True)
        .collect()
    )
    print("reactions by emoji:", ", ".join(f"{e} {n}" for e, n in reactions.iter_rows()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-dataset")
