"""``unidit sample motion`` parses the masked-diffusion sampler options through the shared TaskApp parser."""

from __future__ import annotations

import pytest
from unidit.apps.arguments import UsageError
from unidit.apps.cli import load_app
from unidit.training.masked_task import MaskedSamplingOptions


def test_sample_takes_masked_diffusion_options_with_the_reports_defaults():
    app = load_app("motion")
    args = app.sample_parser().parse_args(["--ckpt", "x", "--prompt", "a person waves", "--out", "o", "--top_k", "5"])
    options = app.sampling_options(args)
    assert isinstance(options, MaskedSamplingOptions)
    assert options.top_k == 5
    assert options.steps == app.report_class().steps  # unset options default to the report's
    args.steps = 0
    with pytest.raises(UsageError):
        app.sampling_options(args)
