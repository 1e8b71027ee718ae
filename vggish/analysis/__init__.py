"""What users do with VGGish embeddings: tables, maps, near-duplicates, the Fréchet Audio Distance.

After extraction, the data path ends here: records (`vggish.records`) ->
clips in memory (`clips`) -> a table (`tables`), a 2-D map (`maps`), or
duplicate pairs (`duplicates`). The Fréchet Audio Distance starts from audio
instead, read as its reference implementation reads it (`fad_input`), and
compares two sets' embedding statistics (`fad_stats`; both sets: `fad`).
`tools.table`, `tools.map`, `tools.duplicates` and `tools.fad` are thin CLIs
over these modules. Optional packages (pyarrow, matplotlib, scikit-learn,
umap-learn, scipy) are imported only by the feature that needs them
(`vggish.extras`).
"""
