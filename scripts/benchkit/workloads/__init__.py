"""The workloads, in the order they run within a round. Add one by writing a
Workload subclass in a module here and listing it below."""

from typing import List

from ..workload import Workload
from .bulk import Bulk
from .churn import Churn
from .dns import Dns
from .faults import Faults
from .grpc import Grpc
from .inspect_sessions import Inspect
from .mysql import Mysql
from .record import Record
from .replay import Replay
from .replay_scale import ReplayScale
from .review import Review
from .rr import ReqResp
from .rss import Rss
from .rules import Rules
from .run_command import RunCommand
from .tls import Tls
from .udp import Udp
from .web import Web

WORKLOADS: List[Workload] = [Bulk(), ReqResp(), Churn(), Rss(), Record(), Replay(), ReplayScale(), Inspect(),
                             RunCommand(), Rules(), Tls(), Udp(), Dns(), Mysql(), Grpc(),
                             Faults(), Web(), Review()]
WORKLOAD_BY_KEY = {w.key: w for w in WORKLOADS}
