"""Developer tools that are not part of the product (the benchmark suite, ``tools/bench``).

Run from the repository root; kept out of the Docker image (.dockerignore).
"""
