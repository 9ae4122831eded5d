"""The InstructPix2Pix panel: instruction, both scales, steps and seed; Edit re-runs the edit."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from .. import validate
from .checks import check_prompt, check_scale, default_steps, prepare_image, require_pipeline
from .instruct import IMAGE_STABILITY, PIX2PIX_STEPS, TEXT_STRENGTH, instruct_edit
from .oplog import OperationLog, check_destination, save_result
from .running import EditResult

__all__ = ["InstructPanel"]


class InstructPanel:
    """An ipywidgets panel for InstructPix2Pix: instruction, both scales, steps, seed.

    ``display(panel.widget)`` shows it; the Edit button calls :meth:`run`, which can
    also be called directly (that is how it is tested without a browser). With
    ``out_dir`` every edit is saved under a safe name (and logged with ``log``).
    """

    def __init__(self, pipe, image, instruction: str = "make it look like a watercolor painting",
                 image_guidance_scale: float = IMAGE_STABILITY, guidance_scale: float = TEXT_STRENGTH,
                 num_inference_steps: int | None = None, seed: int = 0, display_size: int = 256,
                 out_dir: str | Path | None = None, log: OperationLog | None = None):
        import ipywidgets as w

        # Everything the sliders cannot hold is refused here, not at the first click.
        require_pipeline(pipe, "instruct-pix2pix", "InstructPanel")
        check_prompt(instruction, "instruction", "'make it snowy'", empty_ok=False)
        image_guidance_scale = check_scale("image_guidance_scale", image_guidance_scale)
        guidance_scale = check_scale("guidance_scale", guidance_scale)
        seed = validate.seed("seed", seed)
        display_size = validate.count("display_size", display_size, counts="pixels", hint="Try 256.")
        check_destination(out_dir, log)
        self.pipe = pipe
        self.image = prepare_image(image, pipe=pipe)
        self.out_dir, self.log = out_dir, log
        steps = default_steps(num_inference_steps, 8, PIX2PIX_STEPS)
        style = {"description_width": "160px"}
        layout = w.Layout(width="480px")
        self.instruction = w.Text(value=instruction, description="instruction", style=style, layout=layout)
        # The ranges widen to hold the values given: a slider would clip them without a word.
        self.image_guidance_scale = w.FloatSlider(
            value=image_guidance_scale, min=min(1.0, image_guidance_scale), max=max(5.0, image_guidance_scale),
            step=0.1, description="IMAGE_STABILITY", style=style, layout=layout)
        self.guidance_scale = w.FloatSlider(value=guidance_scale, min=min(1.0, guidance_scale),
                                            max=max(20.0, guidance_scale), step=0.5,
                                            description="TEXT_STRENGTH", style=style, layout=layout)
        self.steps = w.IntSlider(value=steps, min=1, max=max(100, steps), description="num_inference_steps",
                                 style=style, layout=layout)
        self.seed = w.IntText(value=seed, description="seed", style=style)
        self.button = w.Button(description="Edit", button_style="primary")
        self.status = w.Label(value="Press Edit to run.")
        self.original = w.Image(value=self._png(self.image, display_size), format="png",
                                width=display_size, height=display_size)
        self.output = w.Image(format="png", width=display_size, height=display_size)
        self.display_size = display_size
        self.result: EditResult | None = None
        self.button.on_click(self.run)
        self.widget = w.VBox([self.instruction, self.image_guidance_scale, self.guidance_scale,
                              self.steps, self.seed, w.HBox([self.button, self.status]),
                              w.HBox([self.original, self.output])])

    @staticmethod
    def _png(image: Image.Image, size: int) -> bytes:
        buf = io.BytesIO()
        image.resize((size, size * image.height // image.width), Image.NEAREST).save(buf, format="PNG")
        return buf.getvalue()

    def run(self, _button=None) -> EditResult | None:
        """Edit with the current widget values; show the result (or the error) in the panel."""
        self.status.value = "editing..."
        try:
            self.result = instruct_edit(self.pipe, self.image, self.instruction.value,
                                        self.image_guidance_scale.value, self.guidance_scale.value,
                                        self.steps.value, self.seed.value)
        except (ValueError, TypeError) as err:
            self.status.value = f"Not run: {err}"
            return None
        if self.out_dir is not None:
            save_result(self.result, self.out_dir, log=self.log)
        self.output.value = self._png(self.result.image, self.display_size)
        saved = f", saved as {Path(self.result.output_file).name}" if self.result.output_file else ""
        self.status.value = (f"done: {self.result.steps_run} steps, image_guidance_scale "
                             f"{self.image_guidance_scale.value:g}, guidance_scale "
                             f"{self.guidance_scale.value:g}{saved}")
        return self.result

    def _ipython_display_(self):  # lets a bare `panel` in a cell show the widget
        from IPython.display import display

        display(self.widget)
