"""Supervision of fazt's services (DESIGN.md section 7).

Services start in order, each ready before the next; a crashed service is restarted with
backoff or takes the process down loudly; shutdown order is the reverse.
"""

from ._errors import ServiceCrashed as ServiceCrashed
from ._policy import RestartPolicy as RestartPolicy
from ._service import Service as Service
from ._service import ServiceState as ServiceState
from ._service import StateName as StateName
from ._supervisor import Supervisor as Supervisor

__all__ = ["RestartPolicy", "Service", "ServiceCrashed", "ServiceState", "StateName", "Supervisor"]
