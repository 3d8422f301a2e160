"""The clinic gateway (issue 15, docs/gateway.md): on a clinic server holding the recipient key,
it takes recordings from the archive or an export directory, proves them genuine, decrypts and
transcodes them to what DICOM allows, and files them into PACS as Video Photographic Image
Storage, once each, confirmed. The appliance never runs it (it has no recipient key)."""
