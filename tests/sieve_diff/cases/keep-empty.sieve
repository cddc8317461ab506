# An empty script: the implicit keep.
