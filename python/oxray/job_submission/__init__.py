"""Job submission (Ray's `ray.job_submission`): run a driver script on a
cluster's head and follow it through the dashboard's Jobs API.

    from oxray.job_submission import JobSubmissionClient, JobStatus

    client = JobSubmissionClient("http://127.0.0.1:8265")
    submission_id = client.submit_job(entrypoint="python script.py", runtime_env={"working_dir": "./"})
    client.get_job_status(submission_id)      # JobStatus.RUNNING, ... SUCCEEDED
    print(client.get_job_logs(submission_id))

The command line is `oxray job submit|status|logs|stop|list|delete`.
"""

from oxray.job_submission.models import (
    DriverInfo,
    JobDetails,
    JobErrorType,
    JobInfo,
    JobStatus,
    JobType,
)
from oxray.job_submission.sdk import JobSubmissionClient

__all__ = ["DriverInfo", "JobDetails", "JobErrorType", "JobInfo", "JobStatus", "JobSubmissionClient", "JobType"]
