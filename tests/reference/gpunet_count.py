# gpunet_count.py — independent reference for parameter and MAC counts of GPUNet
# JSON configs, written from the released builder semantics (shared/docs/gpunet.md §2)
# without reference to the C code. MACs: convolutions (incl. SE 1x1s) + classifier.
import json,sys
def md(v,d=8,minv=8):
    new=max(minv,int(v+d/2)//d*d)
    if new<0.9*v: new+=d
    return new
def conv(cin,cout,k,s,p,h,w,groups=1,bias=False):
    oh=(h+2*p-k)//s+1; ow=(w+2*p-k)//s+1
    params=cout*(cin//groups)*k*k+(cout if bias else 0)
    macs=cout*(cin//groups)*k*k*oh*ow
    return params,macs,oh,ow
def count(path,res=None,ncls=None):
    L=json.load(open(path)); res=res or L[0]['img_resolution']; distill=L[0]['distill']
    h=w=res; P=M=0
    def C(*a,**k):
        nonlocal P,M,h,w
        p,m,h,w=conv(*a,h,w,**k); P+=p; M+=m
    def BN(c):
        nonlocal P; P+=2*c
    for l in L[1:]:
        t=l['layer_type']; i=l['num_in_channels']; o=l['num_out_channels']
        if t in('head','head_large'):
            C(i,o,3,2,1); BN(o)
            if t=='head_large':
                C(o,o,3,1,1);BN(o);C(o,o,3,1,1);BN(o)
        elif t=='conv':
            k=l['kernel_size'];s=l['stride']; C(i,o,k,s,((s-1)+(k-1))//2); BN(o)
        elif t=='irb':
            k=l['kernel_size'];s=l['stride'];e=l['expansion']
            if distill:
                g=l.get('groups',1); mid=int(i*e)
                C(i,mid,1,1,0,groups=g);BN(mid);C(mid,mid,k,s,k//2,groups=mid);BN(mid);C(mid,o,1,1,0,groups=g);BN(o)
            else:
                mid=md(i*e); C(i,mid,1,1,0);BN(mid);C(mid,mid,k,s,((s-1)+(k-1))//2,groups=mid);BN(mid)
                if l['use_se']:
                    rd=round(mid*(0.25/e)); hh,ww=h,w; h=w=1
                    C(mid,rd,1,1,0,bias=True);C(rd,mid,1,1,0,bias=True); h,w=hh,ww
                C(mid,o,1,1,0);BN(o)
        elif t=='fused_irb':
            k=l['kernel_size'];s=l['stride'];e=l['expansion']
            mid=md(i*e); C(i,mid,k,s,(k-1)//2 if s==1 else 0);BN(mid)
            if l['use_se']:
                rd=round(mid*(0.25/e)); hh,ww=h,w; h=w=1
                C(mid,rd,1,1,0,bias=True);C(rd,mid,1,1,0,bias=True); h,w=hh,ww
            C(mid,o,1,1,0);BN(o)
        elif t=='tail':
            n=ncls or l['num_classes']
            if distill:
                C(i,1152,1,1,0);BN(1152); h=w=1; C(1152,o,1,1,0); P+=o*n+n; M+=o*n
            else:
                C(i,o,1,1,0);BN(o); P+=o*n+n; M+=o*n
    return P,M,res
if __name__ == '__main__':
    # usage: gpunet_count.py CONFIG.json [RES [CLASSES]] -> "params macs res"
    a = sys.argv[1:]
    res = int(a[1]) if len(a) > 1 else None
    ncls = int(a[2]) if len(a) > 2 else None
    print(*count(a[0], res, ncls))
