"""Attenuation correction: the classical methods, the networks, and correcting files."""

#: The method ``spectac correct`` uses unless told otherwise: the shipped network closest to CT-AC
#: on every measured figure (docs/models.md). Kept here, in a module that imports nothing, so the
#: command line can show it without loading the methods.
DEFAULT_METHOD = "unet-gan3d-chang"
#: Chang's uniform mu inside the body in 1/cm: the "effective" value used without scatter
#: correction (water: 0.153); here too so the methods' table and the help need no numpy.
DEFAULT_MU_PER_CM = 0.12
