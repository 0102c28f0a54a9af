"""Data: image folders, the decoded uint8 cache, unpaired batches; demo set and curation."""
