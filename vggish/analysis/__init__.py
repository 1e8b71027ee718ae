"""What users do with embeddings after extraction: tables, maps, near-duplicates.

The data path ends here: records (`vggish.records`) -> clips in memory
(`clips`) -> a table (`tables`), a 2-D map (`maps`), or duplicate pairs
(`duplicates`). `tools.table`, `tools.map` and `tools.duplicates` are thin
CLIs over these modules. Optional packages (pyarrow, matplotlib,
scikit-learn, umap-learn) are imported only by the feature that needs them
(`vggish.extras`).
"""
