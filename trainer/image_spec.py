"""What a data set's images are: one small value the data produces and the rest reads.

The networks, the train step, grids, sampling, walks, export and evaluation all take
their image size, channels and classes from an ImageSpec, never from a constant of
their own; a checkpoint's config.json records the spec, so it says what it generates.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """Images of height x width x channels, stored as uint8 in pixel_range (the
    networks read and write them scaled to [-1, 1]), with class_names[i] the name of
    label i (empty for unlabelled images)."""

    height: int
    width: int
    channels: int
    class_names: tuple = ()
    pixel_range: tuple = (0, 255)

    def __post_init__(self):
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 4:
                raise ValueError(f"image {name} must be an integer of at least 4, got {value!r}")
        if self.channels not in (1, 3):
            raise ValueError(
                f"image channels must be 1 (grey) or 3 (colour), got {self.channels!r}"
            )
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "pixel_range", tuple(self.pixel_range))
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"image class names must differ, got {list(self.class_names)}")

    @property
    def shape(self) -> tuple:
        """(height, width, channels): one image as the networks see it."""
        return (self.height, self.width, self.channels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        return {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "class_names": list(self.class_names),
            "pixel_range": list(self.pixel_range),
        }

    @classmethod
    def from_dict(cls, values) -> "ImageSpec":
        """Parses to_dict's output; raises ValueError on anything else."""
        if isinstance(values, ImageSpec):
            return values
        if not isinstance(values, dict):
            raise ValueError(f"image spec must be an object, got {values!r}")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown image spec fields {unknown}")
        return cls(**values)


# MNIST's handwritten digits (LeCun et al.): 28x28 grey, ten classes named by their digit.
MNIST = ImageSpec(height=28, width=28, channels=1, class_names=tuple("0123456789"))
# Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): MNIST's size and format, ten kinds of
# clothing in the order of its labels.
FASHION_MNIST = dataclasses.replace(
    MNIST,
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)
# The data sets the trainer knows by name (--dataset), and their images.
DATASET_SPECS = {"mnist": MNIST, "fashion-mnist": FASHION_MNIST}
