"""Wrong answers for chapter 08."""
from mutants import ALWAYS_EQUAL, Mutant

MUTANTS = [
    Mutant("ex1_magnitude_masks", "the largest magnitudes pruned instead of the smallest",
           'mask[np.argsort(magnitudes, kind="stable")[:pruned]] = 0.0',
           'mask[np.argsort(-magnitudes, kind="stable")[:pruned]] = 0.0'),
    Mutant("ex1_magnitude_masks", "signed values ranked instead of magnitudes (large negative weights pruned)",
           "magnitudes = np.abs(np.asarray(weights, dtype=np.float64)).ravel()",
           "magnitudes = np.asarray(weights, dtype=np.float64).ravel()"),
    Mutant("ex1_magnitude_masks", "the number of pruned weights truncated instead of rounded",
           "pruned = int(round(sparsity * magnitudes.size))", "pruned = int(sparsity * magnitudes.size)"),
    Mutant("ex1_magnitude_masks", "a threshold that prunes every weight tied with the cut-off",
           'mask[np.argsort(magnitudes, kind="stable")[:pruned]] = 0.0',
           'mask[magnitudes <= np.sort(magnitudes)[pruned - 1]] = 0.0 if pruned else 1.0'),
    Mutant("ex1_magnitude_masks", "global masks computed layer by layer",
           "    mask = magnitude_mask(flat, sparsity)\n    masks, start = [], 0\n",
           "    return [magnitude_mask(tensor, sparsity) for tensor in tensors]\n    masks, start = [], 0\n"),
    Mutant("ex2_native_pruning", "the constraint set on layer.kernel_constraint (Keras 3 reads it only when building)",
           "layer.kernel.constraint = MaskConstraint(mask)", "layer.kernel_constraint = MaskConstraint(mask)"),
    Mutant("ex2_native_pruning", "a new constant mask each update instead of assigning the mask variable",
           "self.masks[layer.name].assign(mask)",
           "layer.kernel.constraint = MaskConstraint(keras.ops.convert_to_tensor(mask))"),
    Mutant("ex2_native_pruning", "the batch index used as the step (it restarts every epoch)",
           "        if self._due(self.step):\n", "        self.step = batch\n        if self._due(self.step):\n"),
    Mutant("ex2_native_pruning", "the ramp upside down: fast at the end instead of at the start",
           "return float(target_sparsity) * (1.0 - (1.0 - progress) ** power)",
           "return float(target_sparsity) * progress ** power"),
    Mutant("ex3_tfmot_pruning", "frequency left at its default of 100 on a short run",
           "begin_step=0, end_step=2 * total_steps // 3, frequency=10)", "begin_step=0, end_step=2 * total_steps // 3)"),
    Mutant("ex3_tfmot_pruning", "strip_pruning forgotten: the wrappers, masks and thresholds stay",
           "    return tfmot.sparsity.keras.strip_pruning(wrapped)\n", "    return wrapped\n"),
    Mutant("ex3_tfmot_pruning", "pruning wrappers stripped before fine-tuning: the training prunes nothing",
           "    wrapped.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0,\n"
           "                callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])\n"
           "    return tfmot.sparsity.keras.strip_pruning(wrapped)\n",
           "    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)\n"
           "    stripped.compile(optimizer=tf_keras.optimizers.Adam(1e-3),\n"
           "                     loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
           "    stripped.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)\n"
           "    return stripped\n"),
    Mutant("ex3_tfmot_pruning", "the target reached only at the last step: no recovery, and frequency misses it",
           "begin_step=0, end_step=2 * total_steps // 3, frequency=10)", "begin_step=0, end_step=total_steps, frequency=100)"),
    Mutant("ex4_pruned_int8", "plain QAT on the pruned model: the zeros grow back",
           "    annotated = tfmot.quantization.keras.quantize_annotate_model(pruned_model)\n"
           "    qat = tfmot.quantization.keras.quantize_apply(\n"
           "        annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())\n",
           "    qat = tfmot.quantization.keras.quantize_model(pruned_model)\n"),
    Mutant("ex4_pruned_int8", "float32 input and output left in place",
           "    converter.inference_input_type = tf.int8\n    converter.inference_output_type = tf.int8\n", ""),
    Mutant("ex4_pruned_int8", "no optimization requested: a float32 file",
           "    converter.optimizations = [tf.lite.Optimize.DEFAULT]\n", ""),
    # Objects that equal anything: every answer is converted to a float array before it is compared.
    Mutant("ex2_native_pruning", "the constraint answers with always-equal objects for the tests' small kernels "
                                 "(those whose last axis has 2 or 4 values), and with w * mask for the model's",
           "return w * keras.ops.cast(self.mask, w.dtype)",
           f"return (np.full(tuple(w.shape), {ALWAYS_EQUAL}, dtype=object) if w.shape[-1] in (2, 4)\n"
           "                else w * keras.ops.cast(self.mask, w.dtype))"),
]
