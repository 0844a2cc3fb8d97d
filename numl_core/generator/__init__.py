"""The flow event generator: a conditional normalizing flow as emulator and importance sampler of an
exclusive cross section: the flow (:mod:`~numl_core.generator.model`), sampling and its figures
(:mod:`~numl_core.generator.sampling`), the inputs (:mod:`~numl_core.generator.config`), training
(:mod:`~numl_core.generator.train`), results (:mod:`~numl_core.generator.result`) and the workflow's
actions and live plots (:mod:`~numl_core.generator.workflow`), and matplotlib figures of a result
(:mod:`~numl_core.generator.figures`)."""
