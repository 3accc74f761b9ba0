"""The U-Net backbone, the teacher annotator and the student segmentor (Keras 3 functional models)."""

from o2l_tf.models.student import StudentSegmentor
from o2l_tf.models.teacher import TeacherAnnotator
from o2l_tf.models.unet import UNetBackbone

__all__ = ["StudentSegmentor", "TeacherAnnotator", "UNetBackbone"]
