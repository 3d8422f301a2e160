"""The DICOM Modality Worklist on the appliance: settings, the query (pynetdicom C-FIND), the
service that runs it outside the kiosk and the Unix-socket channel that serves its answers.
Patient names and birth dates stay in memory: nothing here writes them anywhere."""
