"""Machine translation of ESCI text for training-data augmentation (the paper's Google API step).

A `Translator` (base.py) turns a batch of texts of one language into another; backends:
`google_v3.GoogleTranslator` (Cloud Translation v3, google-cloud-translate, the `translate`
extra), `table.TableTranslator` (a parquet of translations made by any MT system),
`argos.ArgosTranslator` (offline, when the user has argostranslate and its models) and
`demo.DemoTranslator` (the generated demo data's own word lists). `cache.TranslationCache`
keeps every answer on disk, committed per batch, and `engine.TranslationPlan` de-duplicates texts,
serves what the cache has and sends the rest in batches within the API's limits;
`pairs` turns the answers into translated pairs in the official schema.
`python -m trainers.translate` applies them to the official files.
"""
