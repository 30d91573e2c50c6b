"""``Dataset.prefetch``: a background thread runs the pipeline ahead of the consumer and, when the consumer's
current device is a GPU, copies each element there.

The thread and the consumer share a bounded queue of ``buffer_size`` elements. Copies to the GPU are issued by the
thread on the *consumer's* CUDA stream: they are ordered after the work the consumer has queued and before the work
it queues next, so the consumer never sees a half-copied array, and CuPy's memory pool (which ties a freed block to
the stream it was allocated on) never hands a block still read by a pending training step to a new copy, as it
could with a stream of our own. A copy from pageable host memory returns once the data has left that memory, so
the thread may wait for the device, while the consumer does not. The thread ends when the pipeline ends,
when it raises (the exception is queued and raised again by the consumer, traceback included), or when the
consumer goes away: closing or dropping the iterator sets a stop flag the thread checks between elements and while
waiting for room in the queue.
"""
import queue
import threading

from .. import devices as _devices
from ..kernels import cuda
from . import structure
from .dataset import AUTOTUNE, Dataset

AUTOTUNE_BUFFER = 2  # what AUTOTUNE means here: two ready while the consumer uses one and the thread makes one
_POLL_SECONDS = 0.05  # how often a blocked thread looks at the stop flag


class Prefetch(Dataset):
    """``Dataset.prefetch``: up to ``buffer_size`` elements prepared ahead, on the consumer's GPU if it has one."""

    def __init__(self, dataset, buffer_size, device=None):
        super().__init__(dataset)
        self._buffer_size = AUTOTUNE_BUFFER if buffer_size == AUTOTUNE else buffer_size
        self._device = device  # None: the consumer's current device when iteration starts

    def _iterate(self):
        target = self._device or _devices.current_device()  # read here: device contexts are per thread
        stream = _current_stream(target)  # and so are CUDA streams
        items = queue.Queue(maxsize=self._buffer_size)
        stop = threading.Event()
        worker = threading.Thread(target=_produce, args=(self._inputs[0], target, stream, items, stop), daemon=True,
                                  name="cuflow.data.prefetch")
        worker.start()
        try:
            while True:
                try:
                    item = items.get(timeout=_POLL_SECONDS * 10)
                except queue.Empty:
                    if not worker.is_alive() and items.empty():
                        raise RuntimeError("prefetch: the background thread ended without finishing the dataset")
                    continue
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            stop.set()
            _drain(items)  # frees a thread blocked on a full queue (and drops staged GPU buffers now)


_END = object()


class _Failure:
    def __init__(self, error):
        self.error = error


def _produce(dataset, target, stream, items, stop):
    """The thread: runs the pipeline, stages elements on ``target``, queues them until done or told to stop."""
    elements = dataset._iterate()
    try:
        with _devices.device(target):  # the consumer's device, for a prefetch nested upstream
            stage = _stager(target, stream)
            for element in elements:
                if stop.is_set() or not _put(items, stage(element), stop):
                    return
            _put(items, _END, stop)
    except Exception as error:  # the consumer raises it, with this thread's traceback attached
        _put(items, _Failure(error), stop)
    finally:
        elements.close()  # in this thread: it may hold threads of its own (a nested prefetch, a map pool)


def _put(items, item, stop):
    while not stop.is_set():
        try:
            items.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _drain(items):
    try:
        while True:
            items.get_nowait()
    except queue.Empty:
        pass


def _current_stream(target):
    if not target.is_gpu:
        return None
    cp = cuda.cupy()
    with cp.cuda.Device(target.index):
        return cp.cuda.get_current_stream()


def _stager(target, stream):
    """A function copying an element's arrays to ``target`` on ``stream`` (the identity for the CPU)."""
    if not target.is_gpu:
        return lambda element: element
    cp = cuda.cupy()

    def stage(element):
        with cp.cuda.Device(target.index), stream:
            return structure.map_structure(lambda a: a if a.dtype == object else cp.asarray(a), element)
    return stage
