"""The experiment spec: the reference's ``SearchExperimentSpec`` text format
(:mod:`~azero_jax.spec.search_spec`), its proto messages and defaults
(:mod:`~azero_jax.spec.spec_protos`) and the proto builder (:mod:`~azero_jax.spec.protos`).

Same layer as :mod:`azero_jax.evolution`: the spec reads the search's config types
(FEC, hurdles, train budget, mutations) while those take their defaults from the spec's
messages, so defaults are written once.
"""
