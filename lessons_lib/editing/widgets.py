"""The InstructPix2Pix panel: instruction, both scales, steps and seed; Edit re-runs the edit."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from .checks import default_steps, prepare_image
from .instruct import IMAGE_STABILITY, PIX2PIX_STEPS, TEXT_STRENGTH, instruct_edit
from .oplog import OperationLog, save_result
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

        self.pipe = pipe
        self.image = prepare_image(image)
        self.out_dir, self.log = out_dir, log
        steps = default_steps(num_inference_steps, 8, PIX2PIX_STEPS)
        style = {"description_width": "160px"}
        layout = w.Layout(width="480px")
        self.instruction = w.Text(value=instruction, description="instruction", style=style, layout=layout)
        self.image_guidance_scale = w.FloatSlider(value=image_guidance_scale, min=1.0, max=5.0, step=0.1,
                                                  description="IMAGE_STABILITY", style=style, layout=layout)
        self.guidance_scale = w.FloatSlider(value=guidance_scale, min=1.0, max=20.0, step=0.5,
                                            description="TEXT_STRENGTH", style=style, layout=layout)
        self.steps = w.IntSlider(value=steps, min=1, max=100, description="num_inference_steps",
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
