"""A hand-made download cache in huggingface_hub's layout, for the tests that resolve hub ids offline."""

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_cache(root, repo_id="org/tiny", files=None, commit=COMMIT, ref="main"):
    """Lay out ``files`` ({name: text}) as huggingface_hub caches a download of ``repo_id`` at ``commit``."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {"config.json": "{}"}).items():
        (snapshot / name).write_text(text)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot
