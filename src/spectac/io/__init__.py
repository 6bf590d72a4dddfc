"""All file reading and writing of spectac lives here."""
