"""spectac: attenuation-corrected myocardial perfusion SPECT for SPECT-only cameras."""

__version__ = "0.1.0"
