"""The declarative catalog of the five operations: paths, parameters, input slots, limits and polling guidance.

Validation, the HTTP client, the mock server and the docs all read this one table; nothing else restates it.
Every figure below comes from the operation's file in the API reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

API_PREFIX = "/api/tasks/visual"
DEFAULT_BASE_URL = "https://techhk.aoscdn.com"
MAX_URL_LENGTH = 512
# The characters RFC 3986 allows in a URI; anything else (spaces, controls, non-ASCII) must be percent-encoded.
# What a task id looks like: nothing that could change the URL it is put into.
TASK_ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"
URL_CHARACTERS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+"
MAX_SIDE = 4096
URL_DOWNLOAD_TIMEOUT_S = 10
MB = 1024 * 1024

# Format names as the docs spell them, mapped to the container they are (what magic bytes can tell apart).
# "raw" and "lzw" are not containers with a signature: raw camera files vary by vendor, LZW is a TIFF
# compression, so they are accepted only as what they are stored in.
_COMMON_FORMATS = ("jpeg", "png", "bmp", "webp", "tiff")
FORMATS_20MB = (*_COMMON_FORMATS, "sgi")  # "rgb" is the SGI image format
FORMATS_30MB = _COMMON_FORMATS


@dataclass(frozen=True)
class Param:
    """One non-file body parameter."""

    name: str
    kind: str  # "int" | "str" | "json"
    description: str
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    default: Any = None
    pattern: str | None = None  # a regular expression the whole value must match
    rule: str | None = None  # how the pattern reads in an error message
    # Cross-parameter rule: this parameter (or, when `requires_for` is set, only those values of it) is allowed
    # only when each named parameter has one of the listed values.
    requires: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    requires_for: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Slot:
    """One image input given as `<name>_file` (multipart) or `<name>_url`."""

    name: str  # "image", "mask", "retain_mask"
    required: bool
    file_wins: bool  # True: both given → the file is used; False: both given is a 400
    alternatives: tuple[str, ...] = ()  # other params that may stand in for this slot (inpaint's rectangles)

    @property
    def file_field(self) -> str:
        return f"{self.name}_file"

    @property
    def url_field(self) -> str:
        return f"{self.name}_url"


@dataclass(frozen=True)
class Operation:
    name: str
    title: str
    slots: tuple[Slot, ...]
    params: tuple[Param, ...]
    max_bytes: int
    formats: tuple[str, ...]
    poll_interval_s: float
    poll_total_s: float | None  # None where the doc gives no total
    credits: int | None  # None where the doc does not say
    result_fields: tuple[str, ...]  # the data fields that carry results
    # (option, its value → the result fields a done task carries): an operation whose outputs depend on an option
    results_by_option: tuple[str, dict[Any, tuple[str, ...]]] | None = None
    same_dimensions: bool = False  # image and masks must match
    max_mask_area: float | None = None  # fraction of the image a removal mask may cover
    max_rectangles: int | None = None
    loop_processing: bool = False  # passes through state 6 (mock lifecycle)
    typical_processing_s: float = 3.0  # not documented: our estimate, used for the first poll and by the mock
    response_extras: tuple[str, ...] = ()  # documented data fields beyond the common ones

    @property
    def path(self) -> str:
        return f"{API_PREFIX}/{self.name}"

    def results_for(self, options: dict[str, Any]) -> tuple[str, ...]:
        """The result fields a done task must carry for a request with these (normalized) options."""
        if self.results_by_option is None:
            return self.result_fields
        name, by_value = self.results_by_option
        return by_value[options.get(name, self.param(name).default)]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def slot(self, name: str) -> Slot:
        for s in self.slots:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Every documented body parameter, files and URLs included."""
        names: list[str] = []
        for s in self.slots:
            names += [s.url_field, s.file_field]
        return (*names, "sync", *(p.name for p in self.params))

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if p.default is not None}


def _int(name: str, description: str, lo: int, hi: int, default: int | None, **kw: Any) -> Param:
    return Param(name, "int", description, minimum=lo, maximum=hi, default=default, **kw)


def _choice(name: str, description: str, choices: tuple[Any, ...], default: Any, **kw: Any) -> Param:
    kind = "int" if all(isinstance(c, int) for c in choices) else "str"
    return Param(name, kind, description, choices=choices, default=default, **kw)


_RETURN_URL_OR_BASE64 = _choice("return_type", "1 = image URL; 2 = base64-encoded image.", (1, 2), 1)

CLOTHING_CLASSES: dict[int, tuple[str, ...]] = {
    1: ("clothes", "tops", "bottoms", "dress", "acc"),
    2: ("clothes", "tops", "bottoms", "dress", "bag", "shoes", "acc"),
    3: ("hair", "face", "head", "body"),
    4: ("hair", "face", "head", "clothes", "tops", "bottoms", "dress", "bag", "shoes", "acc", "body", "others"),
}

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            name="retouching-collection",
            title="Object Retouching",
            slots=(
                Slot("image", required=True, file_wins=True),
                Slot("mask", required=True, file_wins=True),
                Slot("retain_mask", required=False, file_wins=True),
            ),
            params=(
                _int("retouch_strength", "Material strength; higher changes the material more.", 0, 100, 37),
                _int("line_strength", "Line strength; higher applies stronger line constraints.", 0, 100, 60),
                _choice(
                    "type",
                    "1 normal-general, 2 advanced-general, 3 advanced-transparent, 4 advanced-metal, "
                    "5 advanced-jewelry/accessories, 6 advanced-bags.",
                    (1, 2, 3, 4, 5, 6),
                    1,
                ),
            ),
            max_bytes=30 * MB,
            formats=FORMATS_30MB,
            poll_interval_s=1,
            poll_total_s=180,
            credits=None,
            result_fields=("image",),
            same_dimensions=True,
            loop_processing=True,
            typical_processing_s=8.0,
            response_extras=("return_type", "type", "time_elapsed", "state_detail"),
        ),
        Operation(
            name="correction",
            title="Photo Cropping and Enhancement",
            slots=(Slot("image", required=True, file_wins=False),),
            params=(
                _choice(
                    "type",
                    "0 crop+orientation (documents), 1 text enhancement (documents), 2 enhancement+crop "
                    "(documents), 3 crop+orientation (products), 4 crop+orientation+background removal (products).",
                    (0, 1, 2, 3, 4),
                    1,
                ),
                _choice(
                    "return_type",
                    "1 = image URL; 2 = base64-encoded image; 3 = binary image (synchronous requests only).",
                    (1, 2, 3),
                    1,
                    requires={"sync": (1,)},
                    requires_for=(3,),
                ),
            ),
            max_bytes=20 * MB,
            formats=FORMATS_20MB,
            poll_interval_s=1,
            poll_total_s=30,
            credits=3,
            result_fields=("image",),
            typical_processing_s=2.0,
        ),
        Operation(
            name="inpaint",
            title="Objects Removal",
            slots=(
                Slot("image", required=True, file_wins=False),
                Slot("mask", required=True, file_wins=False, alternatives=("rectangles",)),
            ),
            params=(
                Param(
                    "rectangles",
                    "json",
                    'Areas to erase, e.g. [{"x":0,"y":0,"width":100,"height":100}], up to 50.',
                ),
                _RETURN_URL_OR_BASE64,
            ),
            max_bytes=20 * MB,
            formats=FORMATS_20MB,
            poll_interval_s=1,
            poll_total_s=None,
            credits=None,
            result_fields=("image",),
            same_dimensions=True,
            max_mask_area=0.5,
            max_rectangles=50,
            loop_processing=True,
            typical_processing_s=4.0,
        ),
        Operation(
            name="clothing-segmentation",
            title="Clothing Segmentation",
            slots=(Slot("image", required=True, file_wins=False),),
            params=(
                _choice("detail_mode", "1 fine-grained regular; 2 fine-grained ultra-high.", (1, 2), 1),
                _choice(
                    "output_type",
                    "1 merged masks per class; 2 ZIP of subdivided clothing masks; 3 both.",
                    (1, 2, 3),
                    1,
                ),
                _choice("quality", "1 regular; 2 high precision.", (1, 2), 1),
                _choice(
                    "class_type",
                    "1 clothing parts; 2 fashion parts; 3 portrait parts; 4 all classes.",
                    tuple(CLOTHING_CLASSES),
                    1,
                ),
            ),
            max_bytes=20 * MB,
            formats=FORMATS_20MB,
            poll_interval_s=1,  # the doc says "every 1-2 seconds"; the shorter end costs no latency
            poll_total_s=30,
            credits=3,
            result_fields=("class_masks", "clothes_masks"),
            results_by_option=(
                "output_type",
                {1: ("class_masks",), 2: ("clothes_masks",), 3: ("class_masks", "clothes_masks")},
            ),
            typical_processing_s=3.0,
            response_extras=("class_masks", "clothes_masks", "output_type"),
        ),
        Operation(
            name="idphoto",
            title="ID Photo",
            slots=(Slot("image", required=True, file_wins=False),),
            params=(
                Param(
                    "size",
                    "str",
                    "Output size {width}x{height}, lowercase x, each 100-2000. Default: the original size.",
                    pattern=r"(\d+)x(\d+)",
                    rule="must be {width}x{height} with a lowercase x, each between 100 and 2000",
                ),
                _choice("format", "png (transparent) or jpg (white or bg_color background).", ("png", "jpg"), "png"),
                Param(
                    "bg_color",
                    "str",
                    "Solid background colour RRGGBB; only with format=jpg.",
                    pattern=r"[0-9A-Fa-f]{6}",
                    rule="must be a colour RRGGBB in hexadecimal, e.g. FFFFFF",
                    requires={"format": ("jpg",)},
                ),
                _RETURN_URL_OR_BASE64,
            ),
            max_bytes=20 * MB,
            formats=FORMATS_20MB,
            poll_interval_s=1,  # "every 1-2 seconds"
            poll_total_s=None,
            credits=1,
            result_fields=("image",),
            typical_processing_s=2.0,
        ),
    )
}

SIZE_RANGE = (100, 2000)  # idphoto size, each side


def get_operation(name: str) -> Operation:
    """The catalog entry for `name`; raises KeyError naming the known operations."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise KeyError(f"unknown operation {name!r}; known: {', '.join(OPERATIONS)}") from None
