"""An avatar from one photo: face detection and landmarks (dlib), a fitted anny head, a texture projected from the
photo, a stage-3 Gaussian avatar and a report (see ``pipeline.avatar_from_photo``)."""
