"""Load a tgexport dataset with pandas and print a few analyses.

python examples/analyze_pandas.py demo-dataset
"""

import sys

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds


def main(root: str) -> None:
    part = ds.partitioning(pa.schema([("year", pa.int16()), ("month", pa.int8())]), flavor="hive")
    df = pd.read_parquet(f"{root}/posts", partitioning=part)
    posts = df[df["kind"] == "message"]
    print(f"pandas: {len(df)} rows, {len(posts)} messages")
    per_month = posts.groupby(["year", "month"]).size()
    print("posts per month:")
    for (year, month), count in per_month.items():
        print(f"  {year}-{month:02d}: {count}")
    counts = posts["hashtags"].explode().dropna().value_counts()
    tags = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
    print("top hashtags:", ", ".join(f"#{tag} ({n})" for tag, n in tags))
    print(f"mean reactions per post (posts with reaction data): {posts['reactions_total'].dropna().mean():.1f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-dataset")
