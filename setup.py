"""The one compiled part: verify's chain walk (vault/ledger/_walk.c, issue 13).

Everything else is in pyproject.toml. The extension is optional: where it cannot be
built (no C compiler, or no OpenSSL or SQLite headers), verify walks the chain in Python, with the
same findings, more slowly; ``tests/test_walk_kernel.py`` fails there, to say so.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vault.ledger._walk",
            ["vault/ledger/_walk.c"],
            libraries=["crypto", "sqlite3"],
            # SHA256_Init & co. are deprecated in OpenSSL 3 in favour of EVP, whose
            # per-call context allocation costs more than hashing a 300-byte entry
            extra_compile_args=["-O2", "-Wno-deprecated-declarations"],
            optional=True,
        )
    ]
)
