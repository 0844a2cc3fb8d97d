"""The flow event generator: a conditional normalizing flow as emulator and importance sampler of an
exclusive cross section (:mod:`~numl_core.generator.model`, :mod:`~numl_core.generator.sampling`,
:mod:`~numl_core.generator.workflow`)."""
