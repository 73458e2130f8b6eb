import hashlib
import uuid

from flask import Response, json, request, url_for

from api.auth import (
    credential_check,
    current_api_key_id,
    current_caller,
    current_settings,
    current_stream_grant,
    current_user_id,
    get_current_user,
    login_required,
    stream_access_required,
)
from api.input_gate import Blueprint
from api.openapi import documented
from api.request_limits import plan_request_limits
from api.schemas.jobs import (
    FeedbackSchema,
    IdempotencyHeaderSchema,
    JobCreateSchema,
    JobEventsArgsSchema,
    JobGetArgsSchema,
    JobListArgsSchema,
    JobPageSchema,
    JobSchema,
)
from api.services import job_feedback, job_removal, jobs, live, stream_slots
from db.session import db_session, standalone
from workers import job_links

blp = Blueprint("jobs", __name__, description="Submit AI jobs and follow them to a result.")


@blp.route("", methods=["POST"])
@documented(statuses={402, 429})
@login_required
@plan_request_limits
@blp.arguments(JobCreateSchema())
@blp.arguments(IdempotencyHeaderSchema(), location="headers", as_kwargs=True)
@blp.response(202, JobSchema)
def submit(data, idempotency_key=None):
    """Submit a job; poll the `Location` it returns."""
    submitted = jobs.submit(
        db_session(),
        user=current_caller(),
        settings=current_settings(),
        idempotency_key=idempotency_key,
        **data,
    )
    headers = {"Location": url_for("jobs.get_one", job_id=submitted.job.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return submitted.job, 202, headers


@blp.route("", methods=["GET"])
@login_required
@blp.arguments(JobListArgsSchema(), location="query")
@blp.response(200, JobPageSchema)
def list_jobs(args):
    """The caller's jobs, newest first, a page at a time."""
    items, next_cursor = jobs.list_page(
        db_session(), user=get_current_user(), statuses=args.pop("status"), **args
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/<uuid:job_id>", methods=["GET"])
@documented(statuses={429})  # the cap on open streams and long-polls
@login_required
@blp.etag
@blp.arguments(JobGetArgsSchema(), location="query")
@blp.response(200, JobSchema)
def get_one(args, job_id: uuid.UUID):
    """A job's status and, once finished, its output or error; `wait` long-polls."""
    if args["wait"]:
        # What authentication read (an API key's row) gives its connection back: a waiting
        # request holds none (each look at the job borrows one).
        db_session().commit()
        with _stream_slot():
            job = live.wait_for_change(
                user_id=current_user_id(),
                job_id=job_id,
                seconds=args["wait"],
                fingerprint=etag_of,
                seen=next(iter(request.if_none_match.as_set()), None),
                until_finished=args["until"] == "finished",
            )
    else:  # one statement: a pooled connection, no Session
        with standalone() as connection:
            job = jobs.read(connection, user_id=current_user_id(), job_id=job_id)
    job = jobs.placed(job)  # a queued job's place is part of its ETag and its body
    blp.set_etag(etag_data(job))  # a 304 here, before the job is serialised
    wait = jobs.retry_after_hint(job)
    return job, 200, ({"Retry-After": str(wait)} if wait else {})


@blp.route("/<uuid:job_id>", methods=["DELETE"])
@documented(statuses={409})
@login_required
@blp.response(204)
def delete(job_id: uuid.UUID):
    """Delete a finished job: its output, stored files, exports and events (usage stays billed)."""
    job_removal.delete(db_session(), user_id=current_user_id(), job_id=job_id, settings=current_settings())


@blp.route("/<uuid:job_id>/feedback", methods=["PUT"])
@documented(statuses={409})
@login_required
@blp.arguments(FeedbackSchema())
@blp.response(200, JobSchema)
def put_feedback(data, job_id: uuid.UUID):
    """Rate a finished job up or down, with an optional comment; a second PUT replaces it."""
    return job_feedback.put(db_session(), user_id=current_user_id(), job_id=job_id, **data)


@blp.route("/<uuid:job_id>/feedback", methods=["DELETE"])
@login_required
@blp.response(204)
def delete_feedback(job_id: uuid.UUID):
    """Withdraw your feedback on a job."""
    job_feedback.delete(db_session(), user_id=current_user_id(), job_id=job_id)


@blp.route("/<uuid:job_id>/events", methods=["GET"])
@blp.doc(
    description="Authenticate with an access token or API key as elsewhere, or with the `token` "
    "query parameter of the job's `urls.stream` alone (what a browser's EventSource can send). "
    "A token for another job is refused with 401, an expired one with 410, and one of a closed "
    "account with 401: GET the job again for a fresh `urls.stream`.",
    responses={
        200: {
            "description": "Server-sent events: queue (while it waits), status, progress, delta, done.",
            "content": {"text/event-stream": {}},
        },
        204: {"description": "Resumed from the `done` event: nothing more will come."},
    },
)
@documented(statuses={429})  # the cap on open streams and long-polls
@stream_access_required
@blp.arguments(JobEventsArgsSchema(), location="query")
def stream_events(args, job_id: uuid.UUID):
    """Follow a job live: every event in order, then `done`; resumes from Last-Event-ID."""
    if current_stream_grant() is None:  # a stream token is for this job, and checked
        with standalone() as connection:
            jobs.read(connection, user_id=current_user_id(), job_id=job_id)  # 404 unless it is the caller's
    last_event_id = live.check_event_id(request.headers.get("Last-Event-ID") or args.get("last_event_id"))
    if live.ended_at(job_id, last_event_id):
        return Response(status=204)  # it has had every event: an EventSource stops reconnecting
    slot = _stream_slot()
    body = live.event_stream(
        job_id,
        last_event_id=last_event_id,
        keepalive=current_settings().sse_keepalive_seconds,
        credential=credential_check(),
        slot=slot,
    )
    response = Response(
        body, mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    response.call_on_close(slot.release)  # also when the client leaves before the first event
    return response


def _stream_slot() -> stream_slots.StreamSlot:
    """A place in the caller's count of open streams and long-polls; 429 when it is full."""
    return stream_slots.take(
        user_id=current_user_id(), api_key_id=current_api_key_id(), settings=current_settings()
    )


def etag_data(job) -> object:
    """What a job's ETag is made of: its row version, which changes with every update
    of the row, so that a poll can answer 304 without serialising the job, and the
    expiry of its stream URL, which stays the same for a step of time (a client holding
    a 304 holds a stream URL that still works). A job whose output is in storage
    carries a fresh download link on each GET: its ETag is made of the whole
    representation. A queued job's place in its queue moves without the row changing:
    it is part of the ETag, so a poll sees the job move up, and a long-poll answers
    when it does."""
    if job.output_key is not None:
        return JobSchema().dump(job)
    data = [str(job.id), job.xmin, job_links.expiry(job, settings=current_settings())]
    place = jobs.queue_place(job)
    return data if place is None else [*data, place]


def etag_of(job) -> str:
    """The ETag GET /jobs/<id> sends for this job, for a long-poll to compare with the
    client's If-None-Match. `blp.set_etag` makes it the SHA-1 of the data in the app's
    JSON with sorted keys; it is made here the same way, from the same `etag_data`
    (tests/api/test_live.py checks that the two agree)."""
    text = json.dumps(etag_data(job), sort_keys=True)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@blp.route("/<uuid:job_id>/cancel", methods=["POST"])
@documented(statuses={409})
@login_required
@blp.response(202, JobSchema)
def cancel(job_id: uuid.UUID):
    """Cancel a job: at once if queued; a running job stops within seconds."""
    return jobs.cancel(db_session(), user=get_current_user(), job_id=job_id)
