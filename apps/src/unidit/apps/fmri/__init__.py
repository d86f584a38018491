"""``unidit fit|sample|eval fmri``: captions decoded from fMRI through a caption model's image features."""
