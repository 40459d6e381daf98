"""Where models come from: the catalog, downloads, conversion and the converted cache."""
