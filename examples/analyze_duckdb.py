"""Query a tgexport dataset with DuckDB and print a few analyses.

python examples/analyze_duckdb.py demo-dataset
"""

import sys

import duckdb


def main(root: str) -> None:
    con = duckdb.connect()
    con.execute(
        f"""CREATE VIEW posts AS SELECT * FROM read_parquet('{root}/posts/**/*.parquet',
            hive_partitioning = true, hive_types = {{'year': SMALLINT, 'month': TINYINT}})"""
    )
    total, messages = con.execute("SELECT count(*), count(*) FILTER (kind = 'message') FROM posts").fetchone()
    print(f"duckdb: {total} rows, {messages} messages")
    print("posts per month:")
    for year, month, count in con.execute(
        "SELECT year, month, count(*) FROM posts WHERE kind = 'message' GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        print(f"  {year}-{month:02d}: {count}")
    tags = con.execute(
        "SELECT tag, count(*) AS n FROM (SELECT unnest(hashtags) AS tag FROM posts) GROUP BY tag "
        "ORDER BY n DESC, tag LIMIT 5"
    ).fetchall()
    print("top hashtags:", ", ".join(f"#{tag} ({n})" for tag, n in tags))
    (avg,) = con.execute("SELECT avg(reactions_total) FROM posts WHERE kind = 'message'").fetchone()
    print(f"mean reactions per post (posts with reaction data): {avg:.1f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-dataset")
