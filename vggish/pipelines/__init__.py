"""Extraction pipelines: the same per-file steps behind each front door.

- `vggish.pipelines.steps`: decode one file into examples, turn its
  embeddings into a record and a manifest row, and decide when it failed.
- `vggish.extractor` (`tools.extract`): one machine, decoding threads and one
  model, resumable output directory.
- `vggish.pipelines.beam` (`tools.extract_beam`): the same extraction as an
  Apache Beam pipeline (DirectRunner, Dataflow, Flink, Spark); needs the
  `beam` extra.
- `vggish.pipelines.filesystem`: paths anywhere Beam's `FileSystems` reaches
  (local, `gs://`, `s3://`), for the Beam pipeline.
"""
